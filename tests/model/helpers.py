"""Tiny model-test data: a 3-class 12 px ImageSet with a learnable colour signal, tiny models."""

from __future__ import annotations

import torch

from xferlib.data.imageset import ImageSet
from xferlib.models import Classifier, create_backbone


def make_images(n: int = 48, size: int = 12, seed: int = 0) -> ImageSet:
    """Class k has channel k-1 saturated (class 0: plain noise)."""
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 200, (n, 3, size, size), dtype=torch.uint8, generator=g)
    labels = torch.arange(n) % 3
    images[labels == 1, 0] = 250
    images[labels == 2, 1] = 250
    return ImageSet(images, labels, [f"s{seed}-{i}" for i in range(n)])


def make_model(seed: int = 0, num_classes: int = 3) -> Classifier:
    torch.manual_seed(seed)
    return Classifier(create_backbone("tiny", pretrained=False, image_size=12), num_classes)


class Killed(RuntimeError):
    """What `kill_after` raises: a run stopped mid-training, as a kill would stop it."""


def kill_after(epoch: int):
    """An `on_epoch` callback that stops the run right after `epoch` (its checkpoint written)."""

    def on_epoch(e: int, row: dict) -> None:
        if e == epoch:
            raise Killed(f"simulated kill after epoch {e}")

    return on_epoch
