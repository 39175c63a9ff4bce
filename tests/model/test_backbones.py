"""Registry contract over every backbone, the real pretrained Lite0, and missing-weights errors."""

from __future__ import annotations

import pytest
import torch

from xferlib.models import (
    Classifier,
    WeightsNotFoundError,
    create_backbone,
    list_backbones,
)

CAT_CLASSES = range(281, 286)  # ImageNet: tabby, tiger cat, Persian, Siamese, Egyptian cat


@pytest.mark.timeout(20)  # the whole registry at 32 px runs in ~4 s on 2 shared cores
@pytest.mark.parametrize("name", list_backbones())
def test_every_backbone_maps_a_batch_to_pooled_features(name: str) -> None:
    size = 32
    bb = create_backbone(name, pretrained=False, image_size=size)
    assert bb.preprocess.image_size == size and len(bb.preprocess.mean) == 3
    assert bb.provenance.startswith("random-init")
    x = bb.preprocess(torch.randint(0, 256, (2, 3, 20, 20), dtype=torch.uint8))
    assert x.shape == (2, 3, size, size)
    bb.module.eval()
    with torch.no_grad():
        feats = bb.module(x)
    assert feats.shape == (2, bb.feature_dim)
    module_params = {id(p) for p in bb.module.parameters()}
    block_params = [id(p) for b in bb.blocks() for p in b.parameters()]
    assert len(block_params) == len(set(block_params)), "a parameter sits in two blocks"
    assert set(block_params) == module_params, "blocks() must cover every parameter"


def test_classifier_exposes_the_transfer_surface() -> None:
    model = Classifier(create_backbone("tiny", pretrained=False), num_classes=3)
    x = torch.randn(4, 3, 16, 16)
    feats = model.forward_features(x)
    assert feats.shape == (4, 32)
    assert torch.equal(model(x), model.forward_head(feats))
    model.reset_classifier(7)
    assert model(x).shape == (4, 7) and isinstance(model.head, torch.nn.Linear)


def test_unknown_backbone_names_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="efficientnet_lite0"):
        create_backbone("resnet9000")


@pytest.mark.parametrize("name", ["resnet18", "efficientnet_b0"])
def test_missing_torchvision_weights_name_the_path_and_never_download(
    name: str, tmp_path, monkeypatch
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def no_network(*args, **kwargs):
        raise AssertionError("tried to download")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_network)
    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    with pytest.raises(WeightsNotFoundError) as err:
        create_backbone(name, pretrained=True)
    msg = str(err.value)
    assert str(tmp_path / "hub" / "checkpoints") in msg and "model.weights" in msg
    assert "\n" not in msg


def test_torchvision_weights_load_from_a_local_file(tmp_path) -> None:
    import torchvision.models as tvm

    src = tvm.resnet18(weights=None)
    path = tmp_path / "r18.pth"
    torch.save(src.state_dict(), path)
    bb = create_backbone("resnet18", pretrained=True, weights=str(path), image_size=32)
    assert torch.equal(bb.module.conv1.weight, src.conv1.weight)
    assert str(path) in bb.provenance and "sha256:" in bb.provenance


def test_pretrained_lite0_sees_a_cat_in_chelsea_offline() -> None:
    from skimage import data as skdata  # dev dependency: scikit-image ships the chelsea photo

    from xferlib.data.imageset import Preprocess
    from xferlib.models.lite0 import LITE0_MEAN, LITE0_STD, lite0_imagenet_model

    img = torch.from_numpy(skdata.chelsea()).permute(2, 0, 1)[None].contiguous()
    x = Preprocess(128, LITE0_MEAN, LITE0_STD)(img)
    with torch.no_grad():
        probs = lite0_imagenet_model()(x).softmax(-1)[0]
    assert int(probs.argmax()) in CAT_CLASSES
    assert float(probs[list(CAT_CLASSES)].sum()) > 0.5
    # the registered backbone is the same network with its head removed
    bb = create_backbone("efficientnet_lite0", image_size=128)
    assert bb.feature_dim == 1280 and "sha256:" in bb.provenance
