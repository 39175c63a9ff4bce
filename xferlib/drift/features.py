"""Monitoring features: what each scored image contributes to the drift check.

One row per image: the model's view (`pred`, `max_softmax`), its embedding projected on the
champion's PCA (`emb_0..emb_{k-1}`: drift in a few dozen dimensions is testable, in 1280 it is not),
and cheap image properties that catch camera/pipeline changes the model may be blind to.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from xferlib.atomic import atomic_writer

PROPERTY_COLUMNS: tuple[str, ...] = (
    "brightness",
    "contrast",
    "sharpness",
    "width",
    "height",
    "aspect",
)
MODEL_COLUMNS: tuple[str, ...] = ("pred", "max_softmax")
META_COLUMNS: tuple[str, ...] = ("image_id", "sha256", "model_version", "window_id", "ts")

_LAPLACIAN = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]]).view(1, 1, 3, 3)
_LUMA = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)


def emb_columns(k: int) -> list[str]:
    return [f"emb_{i}" for i in range(k)]


def feature_columns(frame: pd.DataFrame) -> list[str]:
    """The columns the drift check tests, in a stable order: model outputs, embedding, properties."""
    embs = sorted((c for c in frame.columns if c.startswith("emb_")), key=lambda c: int(c[4:]))
    return (
        [c for c in MODEL_COLUMNS if c in frame]
        + embs
        + [c for c in PROPERTY_COLUMNS if c in frame]
    )


def image_properties(
    images: torch.Tensor,
    widths: np.ndarray | list[int] | None = None,
    heights: np.ndarray | list[int] | None = None,
    chunk: int = 512,
) -> pd.DataFrame:
    """Brightness and contrast (mean / std of luma in [0, 1]), sharpness (variance of the Laplacian
    of luma, 0-255 scale) and the *original* width, height and aspect (the batch is usually resized,
    so pass the stored sizes; they default to the batch's own)."""
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(
            f"image_properties needs uint8 (N, C, H, W), got {images.dtype} {tuple(images.shape)}"
        )
    n, _, h, w = images.shape
    rows = [_luma_stats(images[i : i + chunk]) for i in range(0, n, chunk)]
    stats = torch.cat(rows) if rows else torch.zeros(0, 3)
    width = np.full(n, w, dtype=np.int64) if widths is None else np.asarray(widths, dtype=np.int64)
    height = (
        np.full(n, h, dtype=np.int64) if heights is None else np.asarray(heights, dtype=np.int64)
    )
    if len(width) != n or len(height) != n:
        raise ValueError(
            f"image_properties got {n} images but {len(width)} widths / {len(height)} heights"
        )
    return pd.DataFrame(
        {
            "brightness": stats[:, 0].numpy().astype(np.float64),
            "contrast": stats[:, 1].numpy().astype(np.float64),
            "sharpness": stats[:, 2].numpy().astype(np.float64),
            "width": width,
            "height": height,
            "aspect": width / np.maximum(height, 1),
        }
    )


def _luma_stats(batch: torch.Tensor) -> torch.Tensor:
    x = batch.float()
    luma = (x * _LUMA).sum(1, keepdim=True) if x.shape[1] == 3 else x
    lap = F.conv2d(luma, _LAPLACIAN) if min(luma.shape[-2:]) >= 3 else torch.zeros_like(luma)
    flat = luma.flatten(1) / 255.0
    return torch.stack(
        [flat.mean(1), flat.std(1, correction=0), lap.flatten(1).var(1, correction=0)], 1
    )


@dataclass(frozen=True)
class PCAProjector:
    """Linear projection of backbone features onto the top-k principal axes of the reference."""

    mean: np.ndarray  # (d,)
    components: np.ndarray  # (k, d), orthonormal rows
    explained_variance: np.ndarray  # (k,)

    @property
    def n_components(self) -> int:
        return int(self.components.shape[0])

    @classmethod
    def fit(cls, features: np.ndarray, n_components: int) -> PCAProjector:
        """Fit on the champion's training features; k is capped at min(n, d)."""
        x = np.asarray(features, dtype=np.float64)
        if x.ndim != 2 or len(x) < 2:
            raise ValueError(f"PCAProjector.fit needs features (n >= 2, d), got shape {x.shape}")
        mean = x.mean(0)
        _, s, vt = np.linalg.svd(x - mean, full_matrices=False)
        k = min(n_components, vt.shape[0])
        comps = vt[:k] * np.sign(vt[:k, [0]] + 1e-30)  # fix the sign so refits agree
        var = s[:k] ** 2 / (len(x) - 1)
        return cls(mean.astype(np.float32), comps.astype(np.float32), var.astype(np.float32))

    def transform(self, features: np.ndarray) -> np.ndarray:
        x = np.asarray(features, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.mean.shape[0]:
            raise ValueError(
                f"features have shape {x.shape} but the PCA was fitted on {self.mean.shape[0]}-d "
                "features; rebuild the reference for this backbone"
            )
        # einsum without BLAS: each row's projection is the same sum in the same order whatever
        # else is in the batch (BLAS picks its kernel by row count, which moved the last bits).
        return np.einsum("nd,kd->nk", x - self.mean, self.components, optimize=False)

    def save(self, path: str | Path) -> None:
        """Write the projector to `path` exactly (np.savez would append .npz to a bare name)."""
        with atomic_writer(path) as f:
            np.savez(
                f,
                mean=self.mean,
                components=self.components,
                explained_variance=self.explained_variance,
            )

    @classmethod
    def load(cls, path: str | Path) -> PCAProjector:
        with np.load(path, allow_pickle=False) as z:
            return cls(z["mean"], z["components"], z["explained_variance"])


def monitoring_frame(
    probs: np.ndarray | torch.Tensor,
    features: np.ndarray | torch.Tensor,
    pca: PCAProjector,
    props: pd.DataFrame,
    meta: pd.DataFrame | Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """One row per image: pred, max_softmax, emb_*, image properties, then passthrough meta
    (image_id/sha256, model_version, window_id, ts: columns of a frame, or scalars / lists)."""
    p = _numpy(probs)
    n = len(p)
    if p.ndim != 2 or len(_numpy(features)) != n or len(props) != n:
        raise ValueError(
            f"monitoring_frame needs one row each: probs {p.shape}, features {len(_numpy(features))}, props {len(props)}"
        )
    emb = pca.transform(_numpy(features))
    frame = pd.DataFrame(
        {"pred": p.argmax(1).astype(np.int64), "max_softmax": p.max(1).astype(np.float64)}
    )
    frame = pd.concat([frame, pd.DataFrame(emb, columns=emb_columns(emb.shape[1]))], axis=1)
    frame = pd.concat([frame, props.reset_index(drop=True)[list(props.columns)]], axis=1)
    meta_frame = (
        meta if isinstance(meta, pd.DataFrame) else pd.DataFrame(dict(meta or {}), index=range(n))
    )
    if len(meta_frame) != n:
        raise ValueError(f"monitoring_frame got {n} images but {len(meta_frame)} meta rows")
    return pd.concat([frame, meta_frame.reset_index(drop=True)], axis=1)


def _numpy(x: np.ndarray | torch.Tensor) -> np.ndarray:
    return x.detach().cpu().float().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
