"""Backbones by name: a small registry in the style of torchvision's `_api.py` and timm's factory.

A backbone is data plus a module: the features network, its output width, its own eval transform
and where its weights came from. Builders import torchvision/timm lazily so that importing
`xferlib.models` stays cheap for the CLI.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from torch import nn

from xferlib.data.imageset import Preprocess

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class Backbone:
    """A features network mapping a normalised batch to pooled features (N, feature_dim).

    `block_list` is ordered input -> output (stem ... last stage) and covers every parameter of
    `module`: gradual unfreezing and layer-wise learning rates walk it from the top.
    `cpu_bf16_ok` says whether bf16 autocast was measured to pay off on CPU for this network.
    """

    name: str
    module: nn.Module
    feature_dim: int
    preprocess: Preprocess
    provenance: str
    block_list: list[nn.Module] = field(default_factory=list)
    cpu_bf16_ok: bool = False

    def blocks(self) -> list[nn.Module]:
        """The network's blocks, input -> output."""
        return list(self.block_list)


Builder = Callable[[bool, "str | None", "int | None"], Backbone]
_BUILDERS: dict[str, Builder] = {}


def register_backbone(name: str) -> Callable[[Builder], Builder]:
    """Decorator: make `builder(pretrained, weights, image_size) -> Backbone` available by name."""

    def wrap(builder: Builder) -> Builder:
        if name in _BUILDERS:
            raise ValueError(f"backbone {name!r} is already registered; pick another name")
        _BUILDERS[name] = builder
        return builder

    return wrap


def list_backbones() -> list[str]:
    """Names accepted by `create_backbone`, sorted."""
    return sorted(_BUILDERS)


def create_backbone(
    name: str,
    pretrained: bool = True,
    weights: str | None = None,
    image_size: int | None = None,
) -> Backbone:
    """Build a backbone by name.

    `pretrained=False` gives a random initialisation (the "scratch" baseline). `weights` is a local
    path or an s3:// URI overriding the default weights location; `image_size` overrides the
    backbone's default input size in its `preprocess`. Nothing is ever downloaded from a hub.
    """
    if name not in _BUILDERS:
        raise ValueError(f"unknown backbone {name!r}; valid: {', '.join(list_backbones())}")
    if image_size is not None and not 8 <= image_size <= 1024:
        raise ValueError(f"image_size={image_size} is out of range; use 8..1024")
    return _BUILDERS[name](pretrained, weights, image_size)


def feature_dim_of(module: nn.Module, image_size: int) -> int:
    """Output width of a features module, found by one forward pass on a zero batch."""
    import torch

    was_training = module.training
    module.eval()
    with torch.no_grad():
        out = module(torch.zeros(1, 3, image_size, image_size))
    module.train(was_training)
    return int(out.shape[-1])
