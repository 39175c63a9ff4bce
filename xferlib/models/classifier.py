"""Classifier = backbone features + a Linear head, with timm's transfer surface."""

from __future__ import annotations

import torch
from torch import nn

from xferlib.data.imageset import Preprocess
from xferlib.models.backbones import Backbone


class Classifier(nn.Module):
    """`forward(x)` maps a normalised batch (see `preprocess`) to logits.

    Parameters live under `features.*` (the backbone module) and `head.*` (the Linear), which is
    the layout `model.pt` stores.
    """

    def __init__(self, backbone: Backbone, num_classes: int) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes={num_classes} must be >= 1")
        self.spec = backbone  # plain attribute: its module is registered once, as `features`
        self.features = backbone.module
        self.head = nn.Linear(backbone.feature_dim, num_classes)

    @property
    def backbone(self) -> Backbone:
        """The Backbone this classifier was built from (name, provenance, blocks, ...)."""
        return self.spec

    @property
    def preprocess(self) -> Preprocess:
        return self.spec.preprocess

    @property
    def num_classes(self) -> int:
        return self.head.out_features

    def blocks(self) -> list[nn.Module]:
        """The backbone's blocks, input -> output (the head is not among them)."""
        return self.spec.blocks()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def reset_classifier(self, num_classes: int) -> None:
        """A fresh randomly initialised head with `num_classes` outputs (same device and dtype)."""
        old = self.head.weight
        self.head = nn.Linear(self.spec.feature_dim, num_classes).to(old.device, old.dtype)
