"""The training recipe's ingredients, each torchvision's or torch's own implementation.

- `image_transform`: per-image augmentation of uint8 images (transforms.v2: flip, random resized
  crop, TrivialAugmentWide or RandAugment) before the backbone's own preprocessing;
- `erase`: RandomErasing on the normalised batch, per image;
- `batch_mix`: MixUp / CutMix (one of them per batch) into soft targets;
- `scheduler`: linear warm-up, then cosine decay, per optimizer step;
- `make_ema`: an exponential moving average of the weights (torch.optim.swa_utils).

Randomness comes from torch's global RNG, which `fine_tune` seeds from (seed, epoch) at the start of
every epoch: a resumed run draws the same augmentations as an uninterrupted one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.optim.lr_scheduler import CosineAnnealingLR, LinearLR, LRScheduler, SequentialLR
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torchvision.transforms import v2

from xferlib.config import FinetuneParams

CROP_SCALE = (0.6, 1.0)  # small objects centred in small images: keep most of each
WARMUP_START = 0.01  # warm-up starts at 1 % of each learning rate


def uses_policy(cfg: FinetuneParams) -> bool:
    """Whether the images go through `image_transform` (else the light flip-and-shift)."""
    return cfg.augment and cfg.augment_policy != "shift"


def image_transform(cfg: FinetuneParams, size: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """uint8 batch (N, C, H, W) -> augmented uint8 batch (N, C, size, size), one draw per image."""
    policy: nn.Module = (
        v2.TrivialAugmentWide() if cfg.augment_policy == "trivial_augment" else v2.RandAugment()
    )
    per_image = v2.Compose(
        [
            v2.RandomResizedCrop(size, scale=CROP_SCALE, antialias=True),
            v2.RandomHorizontalFlip(),
            policy,
        ]
    )

    def apply(images: torch.Tensor) -> torch.Tensor:
        return torch.stack([per_image(img) for img in images])

    return apply


def erase(x: torch.Tensor, p: float) -> torch.Tensor:
    """RandomErasing with probability `p` on each image of a normalised batch (erased with 0)."""
    if p <= 0:
        return x
    eraser = v2.RandomErasing(p=p, value=0.0)
    return torch.stack([eraser(img) for img in x])


def batch_mix(
    cfg: FinetuneParams, num_classes: int
) -> Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]] | None:
    """MixUp and/or CutMix over (images, labels) -> (mixed images, soft targets); None when off."""
    mixes: list[nn.Module] = []
    if cfg.mixup_alpha > 0:
        mixes.append(v2.MixUp(alpha=cfg.mixup_alpha, num_classes=num_classes))
    if cfg.cutmix_alpha > 0:
        mixes.append(v2.CutMix(alpha=cfg.cutmix_alpha, num_classes=num_classes))
    if not mixes:
        return None
    mix = mixes[0] if len(mixes) == 1 else v2.RandomChoice(mixes)
    return lambda x, y: mix(x, y)  # type: ignore[no-any-return]


def scheduler(opt: torch.optim.Optimizer, steps: int, warmup_steps: int) -> LRScheduler:
    """Cosine decay over `steps` optimizer steps, after `warmup_steps` of linear warm-up."""
    warmup = min(warmup_steps, steps - 1)
    if warmup <= 0:
        return CosineAnnealingLR(opt, T_max=max(1, steps))
    ramp = LinearLR(opt, start_factor=WARMUP_START, total_iters=warmup)
    decay = CosineAnnealingLR(opt, T_max=max(1, steps - warmup))
    return SequentialLR(opt, [ramp, decay], milestones=[warmup])


def make_ema(model: nn.Module, cfg: FinetuneParams) -> AveragedModel | None:
    """An EMA copy of `model` (weights and BatchNorm buffers), or None when `ema_decay` is unset."""
    if cfg.ema_decay is None:
        return None
    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema_decay), use_buffers=True)


def ema_state(ema: AveragedModel | None) -> dict[str, Any] | None:
    return None if ema is None else ema.state_dict()
