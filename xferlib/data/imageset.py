"""The in-memory image batch every stage passes to the model code, and its batched transforms.

Images are decoded once into a uint8 tensor (N, 3, H, W) at their stored size; resizing,
normalising and augmenting happen per batch on tensors (on the training device), which keeps the
training loop from waiting on per-image PIL work. Small images (Fashion-MNIST is 28 px) make this
the fast path; a dataset too large for memory would stream shards instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F


@dataclass
class ImageSet:
    images: torch.Tensor  # uint8 (N, 3, H, W); every image already the same size
    labels: torch.Tensor | None = None  # int64 (N,), None for unlabelled production images
    ids: list[str] = field(default_factory=list)  # content hashes (sha256), one per image

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.ndim != 4:
            raise ValueError(
                f"ImageSet.images must be uint8 (N, C, H, W), got {self.images.dtype} {tuple(self.images.shape)}"
            )
        n = self.images.shape[0]
        if self.labels is not None and self.labels.shape[0] != n:
            raise ValueError(f"ImageSet has {n} images but {self.labels.shape[0]} labels")
        if self.ids and len(self.ids) != n:
            raise ValueError(f"ImageSet has {n} images but {len(self.ids)} ids")

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def subset(self, index: torch.Tensor | list[int]) -> ImageSet:
        idx = torch.as_tensor(index, dtype=torch.long)
        ids = [self.ids[i] for i in idx.tolist()] if self.ids else []
        labels = self.labels[idx] if self.labels is not None else None
        return ImageSet(self.images[idx], labels, ids)

    @staticmethod
    def concat(parts: list[ImageSet]) -> ImageSet:
        parts = [p for p in parts if len(p)]
        if not parts:
            raise ValueError("cannot concatenate an empty list of ImageSets")
        size = (int(parts[0].images.shape[-2]), int(parts[0].images.shape[-1]))
        imgs = [
            p.images if tuple(p.images.shape[-2:]) == size else resize_uint8(p.images, size)
            for p in parts
        ]
        known = [p.labels for p in parts if p.labels is not None]
        labels = torch.cat(known) if len(known) == len(parts) else None
        return ImageSet(torch.cat(imgs), labels, [i for p in parts for i in p.ids])


def resize_uint8(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    out = F.interpolate(
        images.float(), size=size, mode="bilinear", antialias=True, align_corners=False
    )
    return out.round().clamp(0, 255).to(torch.uint8)


@dataclass(frozen=True)
class Preprocess:
    """A backbone's own eval transform: uint8 batch -> normalised float batch at image_size."""

    image_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        x = images.float().div_(255.0)
        if x.shape[-1] != self.image_size or x.shape[-2] != self.image_size:
            x = F.interpolate(
                x,
                size=(self.image_size, self.image_size),
                mode="bilinear",
                antialias=True,
                align_corners=False,
            )
        mean = torch.tensor(self.mean, device=x.device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, device=x.device).view(1, -1, 1, 1)
        return (x - mean) / std

    def to_dict(self) -> dict:
        return {"image_size": self.image_size, "mean": list(self.mean), "std": list(self.std)}

    @staticmethod
    def from_dict(d: dict) -> Preprocess:
        return Preprocess(int(d["image_size"]), tuple(d["mean"]), tuple(d["std"]))  # type: ignore[arg-type]


def augment(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Light train-time augmentation on a normalised batch: random flip + random shift (pad-crop)."""
    n, _, h, w = x.shape
    flip = torch.rand(n, generator=generator) < 0.5
    x = torch.where(flip.view(-1, 1, 1, 1).to(x.device), x.flip(-1), x)
    pad = max(1, h // 16)
    padded = F.pad(x, (pad, pad, pad, pad), mode="replicate")
    dy, dx = (int(v) for v in torch.randint(0, 2 * pad + 1, (2,), generator=generator))
    return padded[:, :, dy : dy + h, dx : dx + w].contiguous()
