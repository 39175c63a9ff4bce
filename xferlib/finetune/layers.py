"""Which parameters train, at which learning rate, per strategy; and label-free BN adaptation.

Blocks come from `Classifier.blocks()` (input -> output); unfreezing and layer decay count from
the top (the block next to the head), following ULMFiT (gradual unfreezing, discriminative LRs)
and BEiT-style layer decay (block i from the top: lr_backbone * decay**i).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from xferlib.config import FinetuneParams, Strategy
from xferlib.data.imageset import ImageSet
from xferlib.models import Classifier


def unfrozen_blocks(strategy: Strategy, epoch: int, n_blocks: int, cfg: FinetuneParams) -> int:
    """How many backbone blocks (from the top) train in `epoch` (0-based, counted over all phases)."""
    if strategy in ("scratch", "full"):
        return n_blocks
    if strategy == "linear_probe":
        return 0
    if strategy == "gradual_unfreeze":
        return min(n_blocks, epoch // cfg.unfreeze_every)
    return 0 if epoch < cfg.lp_epochs else n_blocks  # lp_ft


def set_trainable(model: Classifier, n_unfrozen: int) -> None:
    """Head always trains; the top `n_unfrozen` blocks train; everything below is frozen."""
    blocks = model.blocks()
    first = len(blocks) - n_unfrozen
    for i, block in enumerate(blocks):
        block.requires_grad_(i >= first)
    model.head.requires_grad_(True)


def train_mode(model: Classifier, n_unfrozen: int, freeze_bn_stats: bool = False) -> None:
    """Train mode for the head and unfrozen blocks; frozen blocks stay in eval mode so their
    BatchNorm statistics are not dragged toward the small fine-tuning set. With `freeze_bn_stats`
    every BatchNorm stays in eval mode (running statistics fixed, affine weights still trained)."""
    model.train()
    blocks = model.blocks()
    for block in blocks[: len(blocks) - n_unfrozen]:
        block.eval()
    if freeze_bn_stats:
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.eval()


def bn_stats_estimated(model: nn.Module) -> bool:
    """True when the BatchNorm layers hold estimated statistics (pretrained or trained), not the
    initial mean 0 / variance 1 of a randomly initialised network."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    return any(m.running_mean is not None and bool(m.running_mean.abs().sum() > 0) for m in bns)


def param_groups(
    model: Classifier, cfg: FinetuneParams, strategy: Strategy | None = None
) -> list[dict[str, Any]]:
    """AdamW parameter groups: the head at `lr_head`, the backbone at `lr_backbone` (or per block
    with `layer_decay`). `scratch` has no pretrained features to protect, so its backbone uses
    `lr_head`; `linear_probe` has the head only; the fine-tune phase of `lp_ft` trains its
    already-probed head at `lr_backbone` too (Kumar et al. 2022: one small LR after the probe)."""
    strategy = strategy or cfg.strategy
    wd = cfg.weight_decay
    head_lr = cfg.lr_backbone if strategy == "lp_ft" else cfg.lr_head
    head = list(model.head.parameters())
    groups: list[dict[str, Any]] = [
        {"name": "head", "params": head, "lr": head_lr, "weight_decay": wd}
    ]
    if strategy == "linear_probe":
        return groups
    base = cfg.lr_head if strategy == "scratch" else cfg.lr_backbone
    blocks = model.blocks()
    if cfg.layer_decay is None:
        params = [p for b in blocks for p in b.parameters()]
        groups.append({"name": "backbone", "params": params, "lr": base, "weight_decay": wd})
        return groups
    for depth, block in enumerate(reversed(blocks)):  # depth 0 = the block next to the head
        params = list(block.parameters())
        if params:
            index = len(blocks) - 1 - depth
            groups.append(
                {
                    "name": f"block{index}",
                    "params": params,
                    "lr": base * cfg.layer_decay**depth,
                    "weight_decay": wd,
                }
            )
    return groups


@torch.no_grad()
def bn_adapt(model: Classifier, images: ImageSet, batch_size: int = 64) -> int:
    """Re-estimate every BatchNorm's running mean/var on `images` (no labels needed).

    Stats are reset and accumulated as an exact cumulative average (momentum=None) over one
    pass in train mode, then the model is put back in eval mode (AdaBN, Li et al. 2016).
    Returns the number of BatchNorm layers adapted.
    """
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns or len(images) == 0:
        model.eval()
        return 0
    device = next(model.parameters()).device
    momenta = [bn.momentum for bn in bns]
    model.eval()  # dropout and everything else stay in eval; only BN layers collect statistics
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None
        bn.train()
    for start in range(0, len(images), batch_size):
        x = model.preprocess(images.images[start : start + batch_size].to(device))
        model.forward_features(x)
    for bn, momentum in zip(bns, momenta, strict=True):
        bn.momentum = momentum
    model.eval()
    return len(bns)
