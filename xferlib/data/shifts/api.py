"""Corruption catalogue (ImageNet-C / MNIST-C style) and label shifts, for testing drift detection.

Images are the pipeline's own format: uint8 torch tensors (N, C, H, W) with C = 1 or 3, the
layout of `ImageSet.images`. Every corruption works on the whole batch at once (per-image random
draws come from one seeded generator), except `jpeg`, which has to encode image by image.

Severities 1..5 follow Hendrycks & Dietterich (2019, ImageNet-C) where a constant carries over
and are scaled to the image side otherwise (blur radii assume ~64 px; see `_side_scale`). The same
seed gives the same random draws at every severity, so a higher severity is a larger step in the
same direction: that is what makes severity monotone (tested).

Label shifts (Lipton et al. 2018; Rabanser et al. 2019 "Failing Loudly") return the *indices* to
keep: `class_imbalance` keeps a fraction of every class but one, `knockout` removes a fraction of
one class (all of it at severity 5).
"""

from __future__ import annotations

import numpy as np
import torch

from xferlib.data.shifts.corruptions import CORRUPTIONS

IMAGE_SHIFTS: tuple[str, ...] = tuple(CORRUPTIONS)
LABEL_SHIFTS: tuple[str, ...] = ("class_imbalance", "knockout")
SHIFT_KINDS: tuple[str, ...] = IMAGE_SHIFTS + LABEL_SHIFTS


def check_kind(kind: str, severity: int, valid: tuple[str, ...]) -> None:
    if kind not in valid:
        other = "label_shift" if kind in LABEL_SHIFTS else "apply_shift"
        hint = f" ({kind!r} is handled by {other})" if kind in SHIFT_KINDS else ""
        raise ValueError(f"unknown shift kind {kind!r}{hint}; valid: {', '.join(valid)}")
    if not isinstance(severity, int) or not 1 <= severity <= 5:
        raise ValueError(f"shift severity={severity!r} is out of range; valid: integers 1..5")


def apply_shift(images: torch.Tensor, kind: str, severity: int, seed: int = 0) -> torch.Tensor:
    """Corrupt a uint8 (N, C, H, W) batch with `kind` at `severity` 1..5; returns a new uint8 batch.

    Deterministic for a given seed, and the same seed draws the same noise at every severity.
    """
    check_kind(kind, severity, IMAGE_SHIFTS)
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(
            f"apply_shift needs uint8 (N, C, H, W) with C in (1, 3), got {images.dtype} {tuple(images.shape)}"
        )
    if images.shape[0] == 0:
        return images.clone()
    g = torch.Generator().manual_seed(seed)
    x = images.float() / 255.0
    with torch.no_grad():
        out = CORRUPTIONS[kind](x, severity - 1, g)
    return (out * 255.0).round().clamp(0, 255).to(torch.uint8)


def label_shift(
    labels: np.ndarray | torch.Tensor,
    kind: str,
    severity: int,
    seed: int = 0,
    *,
    target_class: int | None = None,
) -> np.ndarray:
    """Indices (sorted, int64) of the rows to keep so the label distribution shifts.

    `class_imbalance`: keep all of `target_class` and a fraction (0.5 .. 0.05) of every other class,
    so the target dominates more as severity grows. `knockout`: drop a fraction (0.2 .. 1.0) of
    `target_class`. The target defaults to a class drawn from the labels present, by `seed`.
    """
    check_kind(kind, severity, LABEL_SHIFTS)
    y = np.asarray(labels.cpu() if isinstance(labels, torch.Tensor) else labels).reshape(-1)
    rng = np.random.default_rng(seed)
    classes = np.unique(y)
    if len(classes) == 0:
        return np.zeros(0, dtype=np.int64)
    target = rng.choice(classes) if target_class is None else target_class
    if target not in classes:
        raise ValueError(
            f"target_class={target!r} is not among the labels; valid: {classes.tolist()}"
        )
    u = rng.random(len(y))  # one draw per row: kept sets are nested across severities
    if kind == "class_imbalance":
        keep_frac = (0.5, 0.3, 0.2, 0.1, 0.05)[severity - 1]
        keep = (y == target) | (u < keep_frac)
    else:
        drop_frac = (0.2, 0.4, 0.6, 0.8, 1.0)[severity - 1]
        keep = (y != target) | (u >= drop_frac)
    return np.flatnonzero(keep).astype(np.int64)
