"""torchvision backbones: resnet18/50, mobilenet_v3_large, efficientnet_b0, convnext_tiny.

No torchvision weights ship in any wheel here, so pretrained weights come from a local file, an
s3:// URI, or torch's hub cache under torchvision's own file name; a missing file is an error
naming the looked-up path, never a download.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from xferlib.atomic import sha256_file
from xferlib.data.imageset import Preprocess
from xferlib.models.backbones import IMAGENET_MEAN, IMAGENET_STD, Backbone, register_backbone
from xferlib.models.weights import load_state_dict_file, resolve_weights


def _weights_file(weights_enum: str) -> str:
    """torchvision's checkpoint file name for a weights enum's DEFAULT entry (from its URL)."""
    import torchvision.models as tvm

    return getattr(tvm, weights_enum).DEFAULT.url.rsplit("/", 1)[-1]


def _build(name: str, weights_enum: str, pretrained: bool, weights: str | None) -> tuple[Any, str]:
    """The full torchvision model (ImageNet head included) and its provenance string."""
    import torchvision.models as tvm

    model = getattr(tvm, name)(weights=None)  # weights=None: torchvision never downloads
    if not pretrained:
        return model, "random-init"
    file_name = _weights_file(weights_enum)
    path = resolve_weights(name, weights, file_name)
    model.load_state_dict(load_state_dict_file(path), strict=True)
    return model, f"{path} sha256:{sha256_file(path)} (torchvision {weights_enum}.DEFAULT layout)"


def _backbone(
    name: str,
    module: nn.Module,
    dim: int,
    provenance: str,
    blocks: list[nn.Module],
    image_size: int | None,
    bf16: bool,
) -> Backbone:
    return Backbone(
        name=name,
        module=module,
        feature_dim=dim,
        preprocess=Preprocess(image_size or 224, IMAGENET_MEAN, IMAGENET_STD),
        provenance=provenance,
        block_list=blocks,
        cpu_bf16_ok=bf16,
    )


# bf16+channels_last train speed vs fp32, bench/precision.py on this 2-core AMX CPU (noisy,
# shared): resnet18 1.7x (96 px); resnet50 0.6x, mobilenet_v3_large 0.6x, efficientnet_b0 1.0x,
# convnext_tiny 0.8x (64 px). Only a measured gain turns bf16 on under precision=auto.
_CPU_BF16_OK = {"resnet18": True, "resnet50": False}


def _resnet(name: str, enum: str) -> Callable[[bool, str | None, int | None], Backbone]:
    def build(pretrained: bool, weights: str | None, image_size: int | None) -> Backbone:
        m, prov = _build(name, enum, pretrained, weights)
        dim = m.fc.in_features
        m.fc = nn.Identity()  # torchvision's resnet forward already pools and flattens
        stem = nn.ModuleList([m.conv1, m.bn1])
        blocks: list[nn.Module] = [stem, m.layer1, m.layer2, m.layer3, m.layer4]
        return _backbone(name, m, dim, prov, blocks, image_size, bf16=_CPU_BF16_OK[name])

    build.__doc__ = f"torchvision {name}; fc replaced by Identity."
    return build


register_backbone("resnet18")(_resnet("resnet18", "ResNet18_Weights"))
register_backbone("resnet50")(_resnet("resnet50", "ResNet50_Weights"))


def _pooled(features: nn.Module, *tail: Any) -> nn.Module:
    return nn.Sequential(features, nn.AdaptiveAvgPool2d(1), *tail, nn.Flatten(1))


@register_backbone("mobilenet_v3_large")
def mobilenet_v3_large(pretrained: bool, weights: str | None, image_size: int | None) -> Backbone:
    """torchvision MobileNetV3-Large: pooled 960-d features (its 1280-d MLP head is dropped)."""
    m, prov = _build("mobilenet_v3_large", "MobileNet_V3_Large_Weights", pretrained, weights)
    module = _pooled(m.features)
    blocks = list(m.features)
    return _backbone("mobilenet_v3_large", module, 960, prov, blocks, image_size, bf16=False)


@register_backbone("efficientnet_b0")
def efficientnet_b0(pretrained: bool, weights: str | None, image_size: int | None) -> Backbone:
    """torchvision EfficientNet-B0: pooled 1280-d features; depthwise, so fp32 on CPU."""
    m, prov = _build("efficientnet_b0", "EfficientNet_B0_Weights", pretrained, weights)
    module = _pooled(m.features)
    return _backbone(
        "efficientnet_b0", module, 1280, prov, list(m.features), image_size, bf16=False
    )


@register_backbone("convnext_tiny")
def convnext_tiny(pretrained: bool, weights: str | None, image_size: int | None) -> Backbone:
    """torchvision ConvNeXt-Tiny: pooled, LayerNorm-ed 768-d features (its head minus the Linear)."""
    m, prov = _build("convnext_tiny", "ConvNeXt_Tiny_Weights", pretrained, weights)
    norm = m.classifier[0]  # LayerNorm2d over the pooled (N, 768, 1, 1) map
    module = _pooled(m.features, norm)
    blocks = [*list(m.features)[:-1], nn.ModuleList([m.features[-1], norm])]
    return _backbone("convnext_tiny", module, 768, prov, blocks, image_size, bf16=False)
