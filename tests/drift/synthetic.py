"""Synthetic monitoring rows shaped like the real columns (pred, max_softmax, emb_*, properties)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F


def window(
    n: int,
    rng: np.random.Generator,
    *,
    k: int = 16,
    shift: str | None = None,
    amount: float = 1.0,
    sizes: tuple[int, ...] = (28,),
) -> pd.DataFrame:
    """One window; `shift` moves one aspect: "embedding", "pred", "brightness" or "confidence".

    `sizes`: the stored image sides width and height are drawn from (heavily tied columns, as
    real uploads are: a few camera resolutions)."""
    emb = rng.normal(0.0, 1.0, (n, k)) * np.linspace(3.0, 0.3, k)  # PCA-like decaying variances
    logits = rng.normal(0.0, 1.0, (n, 10))
    if shift == "embedding":
        emb[:, :4] += amount
    if shift == "pred":
        logits[:, 0] += amount
    if shift == "confidence":
        logits *= 1.0 + amount
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    cols: dict[str, np.ndarray] = {"pred": probs.argmax(1), "max_softmax": probs.max(1)}
    cols.update({f"emb_{i}": emb[:, i] for i in range(k)})
    brightness = rng.beta(2.0, 5.0, n) + (0.1 * amount if shift == "brightness" else 0.0)
    cols.update(
        brightness=brightness,
        contrast=rng.gamma(4.0, 0.05, n),
        sharpness=rng.lognormal(5.0, 1.0, n),
        width=rng.choice(sizes, n),
        height=rng.choice(sizes, n),
    )
    cols["aspect"] = cols["width"] / cols["height"]
    return pd.DataFrame(cols)


def images(n: int, size: int = 32, seed: int = 0) -> torch.Tensor:
    """Photo-like uint8 (N, 3, H, W): a smooth colour field plus one sharp-edged box each."""
    g = torch.Generator().manual_seed(seed)
    base = F.interpolate(
        torch.rand(n, 3, 4, 4, generator=g), size=(size, size), mode="bilinear", align_corners=False
    )
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    c = torch.randint(size // 4, 3 * size // 4, (n, 2), generator=g)
    r = torch.randint(size // 8, size // 4, (n,), generator=g)
    box = ((yy - c[:, 0, None, None]).abs() < r[:, None, None]) & (
        (xx - c[:, 1, None, None]).abs() < r[:, None, None] // 2
    )
    return ((0.6 * base + 0.4 * box[:, None].float()) * 255).round().to(torch.uint8)
