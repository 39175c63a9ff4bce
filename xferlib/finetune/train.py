"""`fine_tune`: one entry point for every transfer strategy, resumable bit-for-bit.

Training runs in phases: a "probe" phase trains the head on cached frozen features (linear_probe,
and the first lp_epochs of lp_ft), an "images" phase trains on image batches (scratch, full,
gradual_unfreeze, the second part of lp_ft). Every epoch re-seeds its shuffling, augmentation and
dropout from (seed, epoch) alone, and last.pt holds model, optimizer, scheduler and progress, so a
run killed after epoch k and resumed ends with exactly the weights of an uninterrupted run.

Under torchrun/DDP (an initialised process group) the image phases split every global batch across
ranks and synchronise BatchNorm; the probe phase runs whole on every rank (it is cheap and needs
no communication). Only rank 0 writes last.pt and the feature cache; every rank can resume.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from xferlib.config import FinetuneParams
from xferlib.data.imageset import ImageSet
from xferlib.finetune.checkpoint import load_checkpoint, restore_rng, rng_states, save_checkpoint
from xferlib.finetune.epochs import (
    EpochCallback,
    LoopContext,
    head_accuracy,
    image_epoch,
    probe_epoch,
    val_accuracy,
)
from xferlib.finetune.features import cached_features
from xferlib.finetune.layers import bn_adapt, bn_stats_estimated, param_groups, unfrozen_blocks
from xferlib.finetune.recipe import batch_mix, image_transform, make_ema, scheduler, uses_policy
from xferlib.finetune.runtime import Runtime, place_model, resolve_runtime
from xferlib.finetune.world import World, sync_batchnorm
from xferlib.models import Classifier
from xferlib.progress import bar

_RUNTIME_ONLY = ("device", "num_workers", "compile")  # may change between a run and its resume


@dataclass(frozen=True)
class TrainResult:
    epochs_run: int
    best_epoch: int
    best_val_accuracy: float | None
    history: list[dict[str, Any]]
    seconds: float
    device: str
    precision: str
    images_per_second: float
    strategy: str

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_EPOCHS = {"probe": "epochs (head)", "images": "epochs"}  # progress bar labels per phase


@dataclass(frozen=True)
class _Phase:
    kind: str  # "probe" (head on cached features) | "images" (image batches)
    start: int  # first global epoch
    end: int  # one past the last
    select_best: bool  # early stopping and best-weights restore apply in this phase


@dataclass
class _Progress:
    epoch: int = 0  # next epoch to run
    best_acc: float | None = None
    best_epoch: int = -1
    best_state: dict[str, torch.Tensor] | None = None
    bad_epochs: int = 0
    stopped: bool = False
    history: list[dict[str, Any]] = field(default_factory=list)
    images: int = 0
    train_seconds: float = 0.0


def fine_tune(
    model: Classifier,
    train: ImageSet,
    val: ImageSet | None,
    cfg: FinetuneParams,
    *,
    checkpoint_dir: Path | None = None,
    resume: bool = False,
    feature_cache: Path | None = None,
    on_epoch: EpochCallback | None = None,
    adapt: ImageSet | None = None,
    world: World | None = None,
) -> TrainResult:
    """Train `model` in place with `cfg.strategy`; returns what happened, epoch by epoch.

    With `resume=True` a `checkpoint_dir/last.pt` left by a killed run is continued (a missing
    one starts afresh). `on_epoch(epoch, row)` runs after each epoch's checkpoint is written.
    `cfg.bn_adapt` re-estimates BatchNorm statistics on `adapt` (default: the train images) first.
    `world` defaults to the initialised process group (torchrun), else a single process.
    """
    world = world or World.current()
    _check_inputs(train, val, cfg, resume, checkpoint_dir)
    world.check_batch(cfg.batch_size)
    rt = resolve_runtime(cfg, model)
    place_model(model, rt)
    saved = load_checkpoint(Path(checkpoint_dir)) if resume and checkpoint_dir else None
    freeze_bn = _freeze_bn(model, cfg)
    if saved is None and cfg.bn_adapt:
        bn_adapt(model, adapt if adapt is not None else train)
    prog = _restore(model, saved, cfg) if saved is not None else _Progress()
    forward = torch.compile(model) if cfg.compile else model
    ctx = LoopContext(
        model,
        train,
        val,
        cfg,
        rt,
        Path(checkpoint_dir) if checkpoint_dir else None,
        feature_cache if world.is_main else None,
        on_epoch,
        forward,
        world,
        freeze_bn=freeze_bn,
        transform=image_transform(cfg, model.preprocess.image_size) if uses_policy(cfg) else None,
        mix=batch_mix(cfg, model.num_classes),
    )
    _run_phases(ctx, prog, saved)
    if prog.best_state is not None:
        model.load_state_dict(prog.best_state)
    model.eval()
    return _result(prog, cfg, rt)


def _freeze_bn(model: Classifier, cfg: FinetuneParams) -> bool:
    """Whether BatchNorm statistics stay frozen. Decided on the starting model (before a
    checkpoint is restored), so a resumed run decides as the original did."""
    return (
        cfg.freeze_bn_stats
        and cfg.strategy != "scratch"
        and (cfg.bn_adapt or bn_stats_estimated(model))
    )


def _run_phases(ctx: LoopContext, prog: _Progress, saved: Any) -> None:
    """Every phase of the strategy (LP-FT has two), with SyncBatchNorm under DDP."""
    rt, world = ctx.rt, ctx.world
    unsync = sync_batchnorm(ctx.model, rt.device) if world.size > 1 else None
    cuda = list(range(torch.cuda.device_count())) if rt.device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=cuda):  # per-epoch seeding must not leak to the caller
            for phase in _phases(ctx.cfg):
                if not prog.stopped and prog.epoch < phase.end:
                    _run_phase(ctx, phase, prog, saved)
    finally:
        if unsync is not None:
            unsync()


def _check_inputs(
    train: ImageSet, val: ImageSet | None, cfg: FinetuneParams, resume: bool, ckpt: Path | None
) -> None:
    if train.labels is None or len(train) == 0:
        raise ValueError(
            f"fine_tune needs labelled train images (got {len(train)} images, labels={'none' if train.labels is None else 'ok'})"
        )
    if val is not None and val.labels is None:
        raise ValueError("fine_tune's val set has no labels; pass val=None or a labelled set")
    if resume and ckpt is None:
        raise ValueError("resume=True needs checkpoint_dir; pass the directory holding last.pt")
    cfg.check()


def _phases(cfg: FinetuneParams) -> list[_Phase]:
    if cfg.strategy == "linear_probe":
        return [_Phase("probe", 0, cfg.epochs, True)]
    if cfg.strategy == "lp_ft":
        lp = cfg.lp_epochs
        return [_Phase("probe", 0, lp, False), _Phase("images", lp, lp + cfg.epochs, True)]
    return [_Phase("images", 0, cfg.epochs, True)]


def _restore(model: Classifier, saved: dict[str, Any], cfg: FinetuneParams) -> _Progress:
    was, now = saved["config"], dataclasses.asdict(cfg)
    defaults = dataclasses.asdict(FinetuneParams())  # keys added since the checkpoint was written
    for key, value in now.items():
        if key not in _RUNTIME_ONLY and was.get(key, defaults[key]) != value:
            raise ValueError(
                f"checkpoint was written with finetune.{key}={was.get(key)!r}, now {value!r}; resume with the same params or delete last.pt"
            )
    model.load_state_dict(saved["model"])
    restore_rng(saved["rng"])
    return _Progress(**saved["progress"])


def _optimizer(ctx: LoopContext, phase: _Phase) -> tuple[torch.optim.Optimizer, Any]:
    strategy = "linear_probe" if phase.kind == "probe" else ctx.cfg.strategy
    opt = torch.optim.AdamW(param_groups(ctx.model, ctx.cfg, strategy))
    per_epoch = math.ceil(len(ctx.train) / ctx.cfg.batch_size)
    steps = per_epoch * (phase.end - phase.start)
    return opt, scheduler(opt, steps, per_epoch * ctx.cfg.warmup_epochs)


def _run_phase(
    ctx: LoopContext, phase: _Phase, prog: _Progress, saved: dict[str, Any] | None
) -> None:
    opt, sched = _optimizer(ctx, phase)
    if saved is not None and saved["phase_start"] == phase.start:
        opt.load_state_dict(saved["optimizer"])
        sched.load_state_dict(saved["scheduler"])
    probe = _probe_data(ctx) if phase.kind == "probe" else None
    ctx.ema = make_ema(ctx.model, ctx.cfg) if probe is None else None
    if ctx.ema is not None and saved is not None and saved["phase_start"] == phase.start:
        ctx.ema.load_state_dict(saved["ema"])
    for epoch in bar(range(prog.epoch, phase.end), _EPOCHS[phase.kind], unit="epoch"):
        t0 = time.perf_counter()
        lr = opt.param_groups[0]["lr"]
        if probe is not None:
            loss, n = probe_epoch(ctx, epoch, opt, sched, probe)
            acc = head_accuracy(ctx, probe[2], probe[3])
        else:
            loss, n, t_train = image_epoch(ctx, epoch, opt, sched)
            acc = val_accuracy(ctx)
        seconds = time.perf_counter() - t0
        prog.images += n
        prog.train_seconds += seconds if probe is not None else t_train
        n_unfrozen = unfrozen_blocks(ctx.cfg.strategy, epoch, len(ctx.model.blocks()), ctx.cfg)
        row = {
            "epoch": epoch,
            "phase": phase.kind,
            "train_loss": loss,
            "val_accuracy": acc,
            "lr": lr,
            "seconds": seconds,
            "unfrozen_blocks": n_unfrozen,
        }
        _record(ctx, phase, prog, row)
        _checkpoint(ctx, phase, prog, opt, sched)
        if ctx.on_epoch is not None:
            ctx.on_epoch(epoch, row)
        if prog.stopped:
            break


def _record(ctx: LoopContext, phase: _Phase, prog: _Progress, row: dict[str, Any]) -> None:
    """Append the epoch and apply best-weights tracking / early stopping."""
    prog.history.append(row)
    prog.epoch = row["epoch"] + 1
    if not phase.select_best:
        return
    acc = row["val_accuracy"]
    weights = ctx.model if ctx.ema is None else ctx.ema.module  # what was validated
    if acc is None:  # no val set: the last epoch is the result
        prog.best_epoch = row["epoch"]
        if ctx.ema is not None:
            prog.best_state = {k: v.detach().cpu().clone() for k, v in weights.state_dict().items()}
    elif prog.best_acc is None or acc > prog.best_acc:
        prog.best_acc, prog.best_epoch, prog.bad_epochs = acc, row["epoch"], 0
        prog.best_state = {k: v.detach().cpu().clone() for k, v in weights.state_dict().items()}
    else:
        prog.bad_epochs += 1
        prog.stopped = prog.bad_epochs >= ctx.cfg.early_stopping_patience


def _checkpoint(
    ctx: LoopContext, phase: _Phase, prog: _Progress, opt: torch.optim.Optimizer, sched: Any
) -> None:
    if ctx.checkpoint_dir is None or not ctx.world.is_main:
        return
    state = {
        "model": ctx.model.state_dict(),
        "optimizer": opt.state_dict(),
        "scheduler": sched.state_dict(),
        "phase_start": phase.start,
        "progress": {
            f.name: getattr(prog, f.name) for f in dataclasses.fields(prog)
        },  # no deep copy
        "rng": rng_states(),
        "config": dataclasses.asdict(ctx.cfg),
        "ema": None if ctx.ema is None else ctx.ema.state_dict(),
    }
    save_checkpoint(ctx.checkpoint_dir, state)


def _probe_data(
    ctx: LoopContext,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """(train features, train labels, val features, val labels) on the device, frozen backbone."""
    rt, model = ctx.rt, ctx.model
    feats = cached_features(model, ctx.train, ctx.feature_cache, rt).to(rt.device)
    labels = ctx.train.labels.to(rt.device)  # type: ignore[union-attr]
    if ctx.val is None:
        return feats, labels, None, None
    vfeats = cached_features(model, ctx.val, ctx.feature_cache, rt).to(rt.device)
    return feats, labels, vfeats, ctx.val.labels.to(rt.device)  # type: ignore[union-attr]


def _result(prog: _Progress, cfg: FinetuneParams, rt: Runtime) -> TrainResult:
    return TrainResult(
        epochs_run=len(prog.history),
        best_epoch=prog.best_epoch,
        best_val_accuracy=prog.best_acc,
        history=list(prog.history),
        seconds=sum(r["seconds"] for r in prog.history),
        device=rt.device.type,
        precision=rt.precision,
        images_per_second=prog.images / prog.train_seconds if prog.train_seconds > 0 else 0.0,
        strategy=cfg.strategy,
    )
