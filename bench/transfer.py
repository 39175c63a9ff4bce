"""The transfer table: accuracy on Fashion-MNIST's official 10k test set after training on a few
labelled images per class, for each strategy, pretrained EfficientNet-Lite0 vs scratch.

Rows: scratch (random init, all layers) / linear_probe / full / gradual_unfreeze / lp_ft.
Columns: 10, 50, 500 labelled images per class, drawn from the 60k train set per seed. Each cell
is mean +- std over 3 seeds; when seed 0 alone shows 3 seeds would exceed --max-cell-seconds
(10 min), the cell keeps 1 seed and says so (`"seeds": 1`). No validation split and no early
stopping: every cell trains a fixed number of epochs, so the test set is never peeked at.
Frozen-backbone test features are computed once and cached (xferlib.finetune.cached_features).

    .venv/bin/python bench/transfer.py                      # full table (see the report estimate)
    .venv/bin/python bench/transfer.py --labels 2 --seeds 1 --test-limit 200 --image-size 32 \
        --epochs 1 --out /tmp/transfer_tiny.json           # smoke check, ~1 min
Writes bench/results/transfer.json: {"rows": [{strategy, labels_per_class, accuracy_mean,
accuracy_std, seconds, seeds}, ...], "config": ..., "checks": ...}.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from xferlib.config import FinetuneParams
from xferlib.data.fashion import FASHION_CLASSES, FASHION_ROOT, load_fashion_mnist
from xferlib.data.imageset import ImageSet
from xferlib.evaluate import metrics_from_probs
from xferlib.finetune import cached_features, fine_tune, resolve_runtime
from xferlib.models import Classifier, create_backbone

STRATEGIES = ["scratch", "linear_probe", "full", "gradual_unfreeze", "lp_ft"]
PROBE_EPOCHS = 50  # head on cached features: cheap, so train it to convergence
IMAGE_STEPS = 4000  # image-steps budget per run: epochs = clamp(ceil(4000 / n), 3, 30)


def fashion_imageset(split: str, limit: int | None = None, root: str = FASHION_ROOT) -> ImageSet:
    """Fashion-MNIST as a 3-channel uint8 ImageSet (grey repeated), ids '<split>-<index>'."""
    x, y = load_fashion_mnist(root, split, limit)
    images = torch.from_numpy(x).unsqueeze(1).expand(-1, 3, -1, -1).contiguous()
    return ImageSet(images, torch.from_numpy(y), [f"fmnist-{split}-{i}" for i in range(len(y))])


def few_labels(train: ImageSet, per_class: int, seed: int) -> ImageSet:
    """`per_class` images of each class, drawn without replacement with `seed`."""
    g = torch.Generator().manual_seed(seed)
    labels = train.labels
    assert labels is not None
    picks = []
    for c in range(int(labels.max()) + 1):
        idx = torch.nonzero(labels == c).flatten()
        picks.append(idx[torch.randperm(len(idx), generator=g)[:per_class]])
    return train.subset(torch.cat(picks))


def cell_params(strategy: str, n_train: int, seed: int, epochs: int | None) -> FinetuneParams:
    """Fixed, per-strategy hyper-parameters (no search: the test set is the only labelled hold-out)."""
    image_epochs = epochs or max(3, min(30, math.ceil(IMAGE_STEPS / n_train)))
    probe_epochs = epochs or PROBE_EPOCHS
    common: dict[str, Any] = dict(batch_size=64, seed=seed, device="auto", weight_decay=1.0e-4)
    if strategy == "linear_probe":
        return FinetuneParams(
            strategy="linear_probe", epochs=probe_epochs, lr_head=1.0e-2, **common
        )
    lr_head = 1.0e-2 if strategy == "lp_ft" else 3.0e-3  # lp_ft: probe-phase LR (see param_groups)
    return FinetuneParams(
        strategy=strategy,  # type: ignore[arg-type]
        epochs=image_epochs,
        lp_epochs=probe_epochs if strategy == "lp_ft" else 0,
        lr_head=lr_head,
        lr_backbone=3.0e-4,
        unfreeze_every=1,
        augment=True,
        **common,
    )


def run_one(
    strategy: str, train: ImageSet, test: ImageSet, args: argparse.Namespace, seed: int
) -> float:
    """Train one model with `strategy` on `train` and return its test accuracy."""
    torch.manual_seed(seed)
    backbone = create_backbone(
        args.backbone, pretrained=strategy != "scratch", image_size=args.image_size
    )
    model = Classifier(backbone, len(FASHION_CLASSES))
    cfg = cell_params(strategy, len(train), seed, args.epochs)
    fine_tune(model, train, None, cfg, feature_cache=args.feature_cache)
    # test features at the training precision; only a frozen backbone's are worth caching
    cache = args.feature_cache if strategy == "linear_probe" else None
    feats = cached_features(model, test, cache, resolve_runtime(cfg, model))
    with torch.no_grad():
        probs = model.head(feats.to(next(model.parameters()).device)).float().softmax(-1)
    labels = test.labels.numpy()  # type: ignore[union-attr]
    return metrics_from_probs(probs.cpu().numpy(), labels, list(FASHION_CLASSES)).accuracy


def run_cell(
    strategy: str, per_class: int, train_all: ImageSet, test: ImageSet, args: argparse.Namespace
) -> dict[str, Any]:
    """All seeds of one cell, dropping to 1 seed when seed 0 shows the cell would take too long."""
    accs, start = [], time.perf_counter()
    for seed in range(args.seeds):
        accs.append(run_one(strategy, few_labels(train_all, per_class, seed), test, args, seed))
        elapsed = time.perf_counter() - start
        if seed == 0 and elapsed * args.seeds > args.max_cell_seconds:
            break
    seconds = time.perf_counter() - start
    row = {
        "strategy": strategy,
        "labels_per_class": per_class,
        "accuracy_mean": statistics.fmean(accs),
        "accuracy_std": statistics.stdev(accs) if len(accs) > 1 else 0.0,
        "seconds": round(seconds, 1),
        "seeds": len(accs),
        "accuracies": accs,
    }
    if len(accs) < args.seeds:
        row["note"] = (
            f"1 seed: seed 0 took {seconds:.0f} s, {args.seeds} seeds would exceed {args.max_cell_seconds:.0f} s"
        )
    return row


def checks(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Does the pretrained default beat scratch by >= 15 points at 50 labels per class?"""
    acc = {(r["strategy"], r["labels_per_class"]): r["accuracy_mean"] for r in rows}
    out: dict[str, Any] = {}
    for per_class in sorted({r["labels_per_class"] for r in rows}):
        if ("scratch", per_class) in acc and ("linear_probe", per_class) in acc:
            best = max(v for (s, p), v in acc.items() if p == per_class and s != "scratch")
            out[f"best_pretrained_minus_scratch_at_{per_class}"] = round(
                best - acc[("scratch", per_class)], 4
            )
    gap = out.get("best_pretrained_minus_scratch_at_50")
    out["pretrained_beats_scratch_by_15_points_at_50"] = None if gap is None else gap >= 0.15
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description="Fashion-MNIST transfer table")
    ap.add_argument("--strategies", nargs="+", default=STRATEGIES, choices=STRATEGIES)
    ap.add_argument("--labels", nargs="+", type=int, default=[10, 50, 500])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--backbone", default="efficientnet_lite0")
    ap.add_argument("--image-size", type=int, default=64)
    ap.add_argument(
        "--epochs", type=int, default=None, help="override every run's epochs (smoke tests)"
    )
    ap.add_argument(
        "--test-limit", type=int, default=None, help="first N test images (smoke tests)"
    )
    ap.add_argument("--max-cell-seconds", type=float, default=600.0)
    ap.add_argument(
        "--feature-cache", type=Path, default=Path(tempfile.gettempdir()) / "xfer-bench-features"
    )
    ap.add_argument("--out", type=Path, default=Path("bench/results/transfer.json"))
    args = ap.parse_args()
    train_all, test = fashion_imageset("train"), fashion_imageset("test", args.test_limit)
    rows, t0 = [], time.perf_counter()
    for per_class in args.labels:
        for strategy in args.strategies:
            rows.append(run_cell(strategy, per_class, train_all, test, args))
            r = rows[-1]
            print(
                f"{strategy:>16} {per_class:>4}/class  {r['accuracy_mean']:.4f} +- {r['accuracy_std']:.4f}  ({r['seeds']} seeds, {r['seconds']:.0f} s)",
                flush=True,
            )
            _write(args, rows, time.perf_counter() - t0)  # partial results survive an interruption
    print(json.dumps(checks(rows)))


def _write(args: argparse.Namespace, rows: list[dict[str, Any]], seconds: float) -> None:
    sample = cell_params("full", 500, 0, args.epochs)
    config = {
        "backbone": args.backbone,
        "image_size": args.image_size,
        "test_images": 10_000 if args.test_limit is None else args.test_limit,
        "seeds_requested": args.seeds,
        "probe_epochs": args.epochs or PROBE_EPOCHS,
        "image_epochs": f"clamp(ceil({IMAGE_STEPS} / n_train), 3, 30)"
        if args.epochs is None
        else args.epochs,
        "example_params": dataclasses.asdict(sample),
        "threads": torch.get_num_threads(),
        "device": "cuda" if torch.cuda.is_available() else "cpu",
        "numpy": np.__version__,
        "torch": torch.__version__,
    }
    out = {
        "rows": rows,
        "config": config,
        "checks": checks(rows),
        "total_seconds": round(seconds, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
