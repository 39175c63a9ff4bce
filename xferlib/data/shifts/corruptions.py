"""The 14 image corruptions: float batches in [0, 1] (N, C, H, W), severity index 0..4, a generator.

Constants follow ImageNet-C (Hendrycks & Dietterich 2019) where they carry over; blur sizes are
tuned for ~64 px images and scale with the side (see `_side_scale`).
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

Corruption = Callable[[torch.Tensor, int, torch.Generator], torch.Tensor]


def _side_scale(x: torch.Tensor) -> float:
    """Blur sizes are tuned for 64 px; smaller images are treated as at least 32 px."""
    return max(min(x.shape[-2:]), 32) / 64.0


def _gaussian_noise(x: torch.Tensor, s: int, g: torch.Generator) -> torch.Tensor:
    c = (0.08, 0.12, 0.18, 0.26, 0.38)[s]
    return x + c * torch.randn(x.shape, generator=g)


def _shot_noise(x: torch.Tensor, s: int, g: torch.Generator) -> torch.Tensor:
    c = (60.0, 25.0, 12.0, 5.0, 3.0)[s]
    return torch.poisson(x * c, generator=g) / c


def _depthwise(x: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """Convolve each image with its own (or one shared) K x K kernel, reflect-padded."""
    n, c, h, w = x.shape
    k = kernels.shape[-1]
    kernels = kernels.expand(n, k, k) if kernels.shape[0] == 1 else kernels
    weight = kernels.repeat_interleave(c, dim=0).unsqueeze(1)  # (n*c, 1, k, k)
    pad = k // 2
    mode = "reflect" if pad < min(h, w) else "replicate"
    padded = F.pad(x.reshape(1, n * c, h, w), (pad, pad, pad, pad), mode=mode)
    return F.conv2d(padded, weight, groups=n * c).reshape(n, c, h, w)


def _defocus_blur(x: torch.Tensor, s: int, g: torch.Generator) -> torch.Tensor:
    r = (1.2, 1.6, 2.2, 3.0, 4.0)[s] * _side_scale(x)
    half = math.ceil(r)
    ax = torch.arange(-half, half + 1, dtype=torch.float32)
    dist = torch.sqrt(ax.view(-1, 1) ** 2 + ax.view(1, -1) ** 2)
    disk = (r + 0.5 - dist).clamp(0.0, 1.0)  # anti-aliased disk
    return _depthwise(x, (disk / disk.sum()).unsqueeze(0))


def _motion_blur(x: torch.Tensor, s: int, g: torch.Generator) -> torch.Tensor:
    length = (3.0, 5.0, 7.0, 9.0, 11.0)[s] * _side_scale(x)
    half = math.ceil(length / 2)
    angle = torch.rand(x.shape[0], generator=g) * math.pi  # one direction per image
    ax = torch.arange(-half, half + 1, dtype=torch.float32)
    yy, xx = ax.view(1, -1, 1), ax.view(1, 1, -1)
    cos, sin = angle.cos().view(-1, 1, 1), angle.sin().view(-1, 1, 1)
    along = (xx * cos + yy * sin).abs()
    across = (-xx * sin + yy * cos).abs()
    kern = (1 - across).clamp(min=0) * (length / 2 + 0.5 - along).clamp(0, 1)
    return _depthwise(x, kern / kern.sum(dim=(1, 2), keepdim=True))


def _brightness(x: torch.Tensor, s: int, g: torch.Generator) -> torch.Tensor:
    return x + (0.1, 0.2, 0.3, 0.4, 0.5)[s]


def _contrast(x: torch.Tensor, s: int, g: torch.Generator) -> torch.Tensor:
    c = (0.4, 0.3, 0.2, 0.1, 0.05)[s]
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * c + mean


def _fog(x: torch.Tensor, s: int, g: torch.Generator) -> torch.Tensor:
    """Additive low-frequency fractal noise (ImageNet-C's plasma fog, approximated by octaves)."""
    strength, decay = ((1.0, 2.0), (1.5, 2.0), (2.0, 1.7), (2.5, 1.5), (3.0, 1.4))[s]
    n, _, h, w = x.shape
    fog = torch.zeros(n, 1, h, w)
    for octave in range(6):
        cells = 2 ** (octave + 1)
        noise = torch.rand(n, 1, cells, cells, generator=g)
        fog += decay**-octave * F.interpolate(
            noise, size=(h, w), mode="bilinear", align_corners=False
        )
    lo = fog.amin(dim=(2, 3), keepdim=True)
    fog = (fog - lo) / (fog.amax(dim=(2, 3), keepdim=True) - lo + 1e-6)
    top = x.amax(dim=(1, 2, 3), keepdim=True).clamp(min=1e-3)
    return (x + strength * fog) * top / (top + strength)


def _pixelate(x: torch.Tensor, s: int, g: torch.Generator) -> torch.Tensor:
    c = (0.5, 0.4, 0.3, 0.25, 0.2)[s]
    h, w = x.shape[-2:]
    small = F.interpolate(x, size=(max(1, round(h * c)), max(1, round(w * c))), mode="area")
    return F.interpolate(small, size=(h, w), mode="nearest")


def _jpeg(x: torch.Tensor, s: int, g: torch.Generator) -> torch.Tensor:
    from PIL import Image

    quality = (25, 18, 15, 10, 7)[s]
    arr = (x * 255).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    out = []
    for img in arr:
        buf = io.BytesIO()
        Image.fromarray(img.squeeze(-1) if img.shape[-1] == 1 else img).save(
            buf, "JPEG", quality=quality
        )
        dec = np.asarray(Image.open(buf))
        out.append(dec.reshape(img.shape))
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).float() / 255


def _affine(x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Warp each image by its 2x3 matrix (normalised coordinates); outside pixels become black."""
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _signs(n: int, g: torch.Generator) -> torch.Tensor:
    return torch.randint(0, 2, (n,), generator=g).float() * 2 - 1


def _rotate(x: torch.Tensor, s: int, g: torch.Generator) -> torch.Tensor:
    rad = math.radians((10, 20, 30, 45, 60)[s]) * _signs(x.shape[0], g)
    cos, sin, zero = rad.cos(), rad.sin(), torch.zeros_like(rad)
    theta = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)
    return _affine(x, theta)


def _shear(x: torch.Tensor, s: int, g: torch.Generator) -> torch.Tensor:
    k = (0.1, 0.2, 0.3, 0.4, 0.5)[s] * _signs(x.shape[0], g)
    one, zero = torch.ones_like(k), torch.zeros_like(k)
    theta = torch.stack([torch.stack([one, k, zero], 1), torch.stack([zero, one, zero], 1)], 1)
    return _affine(x, theta)


def _scale(x: torch.Tensor, s: int, g: torch.Generator) -> torch.Tensor:
    """Zoom out: the content shrinks to this fraction of the frame, the border turns black."""
    inv = 1.0 / (0.9, 0.8, 0.7, 0.6, 0.5)[s]
    theta = torch.tensor([[inv, 0.0, 0.0], [0.0, inv, 0.0]]).expand(x.shape[0], 2, 3)
    return _affine(x, theta)


def _translate(x: torch.Tensor, s: int, g: torch.Generator) -> torch.Tensor:
    frac = (0.05, 0.1, 0.15, 0.2, 0.25)[s]
    angle = torch.rand(x.shape[0], generator=g) * 2 * math.pi
    dx, dy = 2 * frac * angle.cos(), 2 * frac * angle.sin()  # normalised coords span 2
    one, zero = torch.ones_like(dx), torch.zeros_like(dx)
    theta = torch.stack([torch.stack([one, zero, dx], 1), torch.stack([zero, one, dy], 1)], 1)
    return _affine(x, theta)


def _invert(x: torch.Tensor, s: int, g: torch.Generator) -> torch.Tensor:
    """Invert this fraction of the images; the inverted sets are nested across severities."""
    frac = (0.1, 0.25, 0.5, 0.75, 1.0)[s]
    chosen = (torch.rand(x.shape[0], generator=g) < frac).view(-1, 1, 1, 1)
    return torch.where(chosen, 1.0 - x, x)


CORRUPTIONS: dict[str, Corruption] = {
    "gaussian_noise": _gaussian_noise,
    "shot_noise": _shot_noise,
    "defocus_blur": _defocus_blur,
    "motion_blur": _motion_blur,
    "brightness": _brightness,
    "contrast": _contrast,
    "fog": _fog,
    "pixelate": _pixelate,
    "jpeg": _jpeg,
    "rotate": _rotate,
    "shear": _shear,
    "scale": _scale,
    "translate": _translate,
    "invert": _invert,
}
