"""The inner loops of `fine_tune`: one epoch on cached features or on image batches, and val
accuracy. Each epoch draws its randomness only from (seed, epoch), which is what makes resume
bit-identical. Under DDP (`LoopContext.world`) every rank cuts the same global batches and
trains on its part of each; see `xferlib.finetune.world`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from xferlib.config import FinetuneParams
from xferlib.data.imageset import ImageSet, augment
from xferlib.finetune.layers import set_trainable, train_mode, unfrozen_blocks
from xferlib.finetune.recipe import erase
from xferlib.finetune.runtime import Runtime
from xferlib.finetune.world import World, ddp_forward
from xferlib.models import Classifier

EpochCallback = Callable[[int, dict[str, Any]], None]


@dataclass
class LoopContext:
    model: Classifier
    train: ImageSet
    val: ImageSet | None
    cfg: FinetuneParams
    rt: Runtime
    checkpoint_dir: Path | None
    feature_cache: Path | None
    on_epoch: EpochCallback | None
    forward: Callable[[torch.Tensor], torch.Tensor]
    world: World = field(default_factory=World)
    ddp: dict[int, Callable[[torch.Tensor], torch.Tensor]] = field(default_factory=dict)
    freeze_bn: bool = False  # BatchNorm running statistics stay fixed (see FinetuneParams)
    # the recipe (xferlib.finetune.recipe): per-image uint8 augmentation, MixUp/CutMix, EMA weights
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None
    mix: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]] | None = None
    ema: Any = None  # torch.optim.swa_utils.AveragedModel during an image phase, when enabled


def seed_epoch(seed: int, epoch: int) -> torch.Generator:
    """Seed global RNG (dropout) and return a generator (shuffle, augment) from (seed, epoch)."""
    s = (seed * 1_000_003 + epoch) % (2**63)
    torch.manual_seed(s)
    return torch.Generator().manual_seed(s)


def batches(n: int, batch_size: int, gen: torch.Generator, min_last: int = 2) -> list[torch.Tensor]:
    """A shuffled split into batches; a trailing batch smaller than `min_last` joins the previous
    (BatchNorm needs two images; under DDP every rank needs one: min_last = world size)."""
    parts = list(torch.randperm(n, generator=gen).split(batch_size))
    if len(parts) > 1 and len(parts[-1]) < min_last:
        parts[-2:] = [torch.cat(parts[-2:])]
    return parts


def probe_epoch(
    ctx: LoopContext, epoch: int, opt: Any, sched: Any, probe: tuple
) -> tuple[float, int]:
    feats, labels = probe[0], probe[1]
    set_trainable(ctx.model, 0)
    ctx.model.head.train()
    gen = seed_epoch(ctx.cfg.seed, epoch)
    total = 0.0
    for idx in batches(len(feats), ctx.cfg.batch_size, gen):
        idx = idx.to(feats.device)
        loss = F.cross_entropy(
            ctx.model.head(feats[idx]), labels[idx], label_smoothing=ctx.cfg.label_smoothing
        )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        total += loss.item() * len(idx)
    return total / len(feats), len(feats)


def image_epoch(ctx: LoopContext, epoch: int, opt: Any, sched: Any) -> tuple[float, int, float]:
    """One pass over the train images; returns mean loss, images seen (all ranks), seconds."""
    model, cfg, rt = ctx.model, ctx.cfg, ctx.rt
    t0 = time.perf_counter()
    n_unfrozen = unfrozen_blocks(cfg.strategy, epoch, len(model.blocks()), cfg)
    set_trainable(model, n_unfrozen)
    train_mode(model, n_unfrozen, ctx.freeze_bn)
    gen, world = seed_epoch(cfg.seed, epoch), ctx.world
    parts = batches(len(ctx.train), cfg.batch_size, gen, max(2, world.size))
    gen = world.augment_generator(gen, cfg.seed * 1_000_003 + epoch)
    forward = _train_forward(ctx, n_unfrozen)
    total = 0.0
    for part in parts:
        idx = world.shard(part)
        x, y = _batch(ctx, idx, gen)
        with rt.autocast():
            logits = forward(rt.layout(x))
        loss = F.cross_entropy(logits.float(), y, label_smoothing=cfg.label_smoothing)
        opt.zero_grad(set_to_none=True)
        (loss * world.loss_scale(len(idx), len(part))).backward()
        opt.step()
        sched.step()
        if ctx.ema is not None:
            ctx.ema.update_parameters(model)
        total += loss.item() * len(idx)
    [total] = world.sum(total)
    return total / len(ctx.train), len(ctx.train), time.perf_counter() - t0


def _batch(
    ctx: LoopContext, idx: torch.Tensor, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """One training batch on the device: augmented, normalised images and their (soft) targets."""
    model, cfg, rt = ctx.model, ctx.cfg, ctx.rt
    images = ctx.train.images[idx]
    if ctx.transform is not None:
        x = model.preprocess(rt.to_device(ctx.transform(images)))
    else:
        x = model.preprocess(rt.to_device(images))
        x = augment(x, gen) if cfg.augment else x
    x = erase(x, cfg.random_erasing)
    y = rt.to_device(ctx.train.labels[idx])  # type: ignore[index]
    return ctx.mix(x, y) if ctx.mix is not None else (x, y)


def _train_forward(ctx: LoopContext, n_unfrozen: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """`ctx.forward`, or under DDP a wrapper over the currently trainable parameters (made anew
    when that set changes: DDP registers its gradient hooks once, at construction)."""
    if ctx.world.size == 1:
        return ctx.forward
    if n_unfrozen not in ctx.ddp:
        ctx.ddp.clear()
        ctx.ddp[n_unfrozen] = ddp_forward(ctx.model, ctx.cfg.compile, ctx.rt.device)
    return ctx.ddp[n_unfrozen]


@torch.no_grad()
def head_accuracy(
    ctx: LoopContext, feats: torch.Tensor | None, labels: torch.Tensor | None
) -> float | None:
    if feats is None or labels is None:
        return None
    ctx.model.head.eval()
    return float((ctx.model.head(feats).argmax(-1) == labels).float().mean())


@torch.no_grad()
def val_accuracy(ctx: LoopContext, batch_size: int = 256) -> float | None:
    """Accuracy on the val set; under DDP each rank scores its share and the counts are summed,
    so every rank sees the same number (early stopping agrees)."""
    if ctx.val is None:
        return None
    model, rt, world = ctx.model, ctx.rt, ctx.world
    val = ctx.val if world.size == 1 else ctx.val.subset(world.shard(torch.arange(len(ctx.val))))
    model.eval()
    net = ctx.forward if ctx.ema is None else ctx.ema.module.eval()
    correct = 0
    for start in range(0, len(val), batch_size):
        x = model.preprocess(rt.to_device(val.images[start : start + batch_size]))
        with rt.autocast():
            pred = net(rt.layout(x)).argmax(-1).cpu()
        correct += int((pred == val.labels[start : start + batch_size]).sum())  # type: ignore[index]
    return world.sum(correct)[0] / len(ctx.val)
