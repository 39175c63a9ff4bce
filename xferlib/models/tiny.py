"""A tiny random conv net for tests: four conv-BN-ReLU blocks, 32-d features, milliseconds per batch."""

from __future__ import annotations

from torch import nn

from xferlib.data.imageset import Preprocess
from xferlib.models.backbones import Backbone, register_backbone


def _block(c_in: int, c_out: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


@register_backbone("tiny")
def tiny(pretrained: bool, weights: str | None, image_size: int | None) -> Backbone:
    """Test-only backbone. It has no pretrained weights: `pretrained` only changes provenance."""
    if weights is not None:
        raise ValueError(f"backbone 'tiny' takes no weights (got {weights!r}); drop model.weights")
    blocks: list[nn.Module] = [
        _block(3, 8, 1),
        _block(8, 16, 2),
        _block(16, 32, 2),
        _block(32, 32, 1),
    ]
    module = nn.Sequential(*blocks, nn.AdaptiveAvgPool2d(1), nn.Flatten(1))
    return Backbone(
        name="tiny",
        module=module,
        feature_dim=32,
        preprocess=Preprocess(image_size or 16, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)),
        provenance="random-init (tiny test backbone)",
        block_list=blocks,
        cpu_bf16_ok=False,
    )
