"""The transfer table: Fashion-MNIST test accuracy after training on a few labelled images per
class, pretrained EfficientNet-Lite0 (each strategy) against the same network from scratch.

Protocol (every choice on validation, the test set read once per reported seed):
- Splits: a validation split of VAL_PER_CLASS images per class is drawn once from the 60k train
  set; the few-label draws (per seed) come from the rest; the official 10k test set is scored
  only after a cell's model is final, never during selection or early stopping.
- Selection (seed 0, 50 labels per class, validation accuracy only):
  `freeze_bn_stats` on/off for every fine-tuning strategy (one value for the table, the best
  mean), and the scratch learning rate from SCRATCH_LRS.
- Fine-tuning cells: the library's strategy defaults (fixed epochs, see `cell_params`) with
  early stopping and best-epoch restore on validation.
- Scratch cells get a scratch budget: up to SCRATCH_STEPS optimizer steps (several times the
  longest fine-tuning cell; the JSON records both), early stopping on validation after
  SCRATCH_PATIENCE_STEPS without improvement, the learning rate chosen above. Tiny label sets are
  repeated within an epoch so that one epoch is at least EPOCH_IMAGES images (validation is
  checked once per epoch; augmentation makes the copies differ).
- Recipe rows: `recipe` is the `full` cell with the changes bench/recipe.py chose on its own
  held-out selection split (never test; read from bench/results/recipe.json, its commit recorded);
  `semi` adds teacher -> pseudo-labels -> student over POOL_SIZE unlabelled images of the train
  pool (labels dropped, the seed's labelled draw excluded).
- Scratch match: scratch at 100, 200, 500, 1,000 labels per class, in order, until its test
  accuracy reaches the best pretrained cell at 50 per class (`scratch_match` says where).
- Seeds: 3, unless seed 0 shows that 3 would take over --max-cell-seconds (10 min); then 1 and
  the row says so.

    .venv/bin/python bench/transfer.py                  # the table (hours on 2 cores)
    .venv/bin/python bench/transfer.py --resume         # continue an interrupted run of the same code
    .venv/bin/python bench/transfer.py --quick --out /tmp/transfer_smoke.json   # ~2 min
Writes bench/results/transfer.json: selection, rows (per cell: accuracies per seed, optimizer
steps, epochs, early stopping), budgets, provenance.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import statistics
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

from xferlib.config import FinetuneParams  # noqa: E402
from xferlib.data.fashion import FASHION_CLASSES, FASHION_ROOT, load_fashion_mnist  # noqa: E402
from xferlib.data.imageset import ImageSet  # noqa: E402
from xferlib.evaluate import metrics_from_probs  # noqa: E402
from xferlib.finetune import cached_features, fine_tune, resolve_runtime  # noqa: E402
from xferlib.finetune.semi import self_train  # noqa: E402
from xferlib.models import Classifier, create_backbone  # noqa: E402

STRATEGIES = ["scratch", "linear_probe", "full", "gradual_unfreeze", "lp_ft", "recipe", "semi"]
TABLE = ["scratch", "linear_probe", "full", "lp_ft", "recipe", "semi"]  # the default rows
FINE_TUNES = ["full", "gradual_unfreeze", "lp_ft"]
RECIPES = (
    "recipe",
    "semi",
)  # the recipe chosen by bench/recipe.py on validation, and + pseudo-labels
RECIPE_FILE = Path(__file__).resolve().parent / "results" / "recipe.json"
RECIPE_BASE_EPOCHS = 8  # bench/recipe.py's base budget at 50 per class (its `epochs` scale from it)
POOL_SIZE = 10_000  # the semi row's unlabelled pool: the rest of the train pool, labels dropped
SCRATCH_MATCH = (100, 200, 500, 1000)  # labels per class scratch tries until it matches
VAL_PER_CLASS = 50
VAL_SEED = 10_000  # the validation draw; few-label draws use seeds 0, 1, 2
PROBE_EPOCHS = 50  # head on cached features: cheap, so train it to convergence
IMAGE_STEPS = 4000  # fine-tuning image budget: epochs = clamp(ceil(4000 / n), 3, 30)
SCRATCH_LRS = (1.0e-3, 3.0e-3, 1.0e-2, 3.0e-2)
SCRATCH_STEPS = 1500
SCRATCH_PATIENCE_STEPS = 300
EPOCH_IMAGES = 1024


def fashion_imageset(split: str, limit: int | None = None, root: str = FASHION_ROOT) -> ImageSet:
    """Fashion-MNIST as a 3-channel uint8 ImageSet (grey repeated), ids '<split>-<index>'."""
    x, y = load_fashion_mnist(root, split, limit)
    images = torch.from_numpy(x).unsqueeze(1).expand(-1, 3, -1, -1).contiguous()
    return ImageSet(images, torch.from_numpy(y), [f"fmnist-{split}-{i}" for i in range(len(y))])


def per_class_draw(labels: torch.Tensor, per_class: int, seed: int) -> torch.Tensor:
    """Indices of `per_class` items of each class, drawn without replacement with `seed`."""
    g = torch.Generator().manual_seed(seed)
    picks = []
    for c in range(int(labels.max()) + 1):
        idx = torch.nonzero(labels == c).flatten()
        picks.append(idx[torch.randperm(len(idx), generator=g)[:per_class]])
    return torch.cat(picks)


def split_pool(train: ImageSet, val_per_class: int) -> tuple[ImageSet, ImageSet]:
    """(pool for few-label draws, validation split), disjoint."""
    assert train.labels is not None
    val_idx = per_class_draw(train.labels, val_per_class, VAL_SEED)
    keep = torch.ones(len(train), dtype=torch.bool)
    keep[val_idx] = False
    return train.subset(torch.nonzero(keep).flatten()), train.subset(val_idx)


def few_labels(pool: ImageSet, per_class: int, seed: int) -> ImageSet:
    assert pool.labels is not None
    return pool.subset(per_class_draw(pool.labels, per_class, seed))


def cell_params(strategy: str, n_train: int, seed: int, args: argparse.Namespace) -> FinetuneParams:
    """The per-strategy recipe; scratch's epochs count repeated-set epochs (see `scratch_set`)."""
    common_kw: dict[str, Any] = dict(
        batch_size=64, seed=seed, device="auto", weight_decay=1.0e-4, freeze_bn_stats=args.freeze_bn
    )
    if strategy == "linear_probe":
        return FinetuneParams(
            strategy="linear_probe", epochs=args.epochs or PROBE_EPOCHS, lr_head=1.0e-2, **common_kw
        )
    if strategy == "scratch":
        per_epoch = math.ceil(scratch_reps(n_train) * n_train / 64)  # an epoch of scratch_set
        return FinetuneParams(
            strategy="scratch",
            epochs=args.epochs or math.ceil(args.scratch_steps / per_epoch),
            early_stopping_patience=math.ceil(SCRATCH_PATIENCE_STEPS / per_epoch),
            lr_head=args.scratch_lr,
            lr_backbone=args.scratch_lr,
            augment=True,
            **common_kw,
        )
    if strategy in RECIPES:
        return recipe_params(strategy, n_train, seed, args)
    return FinetuneParams(
        strategy=strategy,  # type: ignore[arg-type]
        epochs=args.epochs or max(3, min(30, math.ceil(IMAGE_STEPS / n_train))),
        lp_epochs=(args.epochs or PROBE_EPOCHS) if strategy == "lp_ft" else 0,
        lr_head=1.0e-2 if strategy == "lp_ft" else 3.0e-3,  # lp_ft: the probe phase's LR
        lr_backbone=3.0e-4,
        unfreeze_every=1,
        augment=True,
        **common_kw,
    )


def recipe_params(
    strategy: str, n_train: int, seed: int, args: argparse.Namespace
) -> FinetuneParams:
    """The `full` cell's params with bench/recipe.py's chosen changes; a longer budget chosen
    there scales this cell's epochs by the same factor."""
    full = cell_params("full", n_train, seed, args)
    changes = dict(args.recipe["changes"])
    scale = changes.pop("epochs", RECIPE_BASE_EPOCHS) / RECIPE_BASE_EPOCHS
    cfg = dataclasses.replace(full, **changes, epochs=max(1, round(full.epochs * scale)))
    if strategy == "semi":
        cfg = dataclasses.replace(cfg, semi_supervised="pseudo_label")
    return cfg


def load_recipe(path: Path) -> dict[str, Any]:
    """bench/recipe.py's choice (made on validation); the recipe rows cannot run without it."""
    import json

    if not path.is_file():
        raise SystemExit(f"{path} is missing; run bench/recipe.py first or drop the recipe rows")
    result = json.loads(path.read_text())
    if not result.get("complete") or result.get("quick") or not result.get("chosen"):
        raise SystemExit(f"{path} is not a complete recipe selection; rerun bench/recipe.py")
    return {**result["chosen"], "commit": result["provenance"]["commit"]}


def scratch_reps(n_train: int) -> int:
    """How many copies of the label set make one scratch epoch of at least EPOCH_IMAGES images."""
    return math.ceil(EPOCH_IMAGES / n_train)


def scratch_set(train: ImageSet) -> ImageSet:
    """The label set repeated so that one epoch holds at least EPOCH_IMAGES images."""
    reps = scratch_reps(len(train))
    return train if reps == 1 else train.subset(torch.arange(len(train)).repeat(reps))


def optimizer_steps(history: list[dict[str, Any]], n_train: int, batch: int) -> int:
    return len(history) * math.ceil(n_train / batch)


def train_one(
    strategy: str, train: ImageSet, val: ImageSet, seed: int, args: argparse.Namespace
) -> tuple[Classifier, dict[str, Any]]:
    """Train one model with `strategy`; returns it and what the run did (validation only)."""
    torch.manual_seed(seed)
    size = args.recipe["image_size"] if strategy in RECIPES else args.image_size
    backbone = create_backbone(args.backbone, pretrained=strategy != "scratch", image_size=size)
    model = Classifier(backbone, len(FASHION_CLASSES))
    data = scratch_set(train) if strategy == "scratch" else train
    cfg = cell_params(strategy, len(train), seed, args)
    extra: dict[str, Any] = {}
    if strategy == "semi":
        semi = self_train(model, train, unlabelled_pool(args.pool, train, seed), val, cfg)
        res = semi.final
        extra = {"pseudo_labels": semi.pseudo.to_dict(), "kept": semi.kept}
        if semi.student is not None:
            extra["student_steps"] = optimizer_steps(
                semi.student.history, len(train) + len(semi.pseudo.images), cfg.batch_size
            )
    else:
        res = fine_tune(model, data, val, cfg, feature_cache=args.feature_cache)
    run = {
        **extra,
        "seed": seed,
        "val_accuracy": res.best_val_accuracy,
        "epochs_run": res.epochs_run,
        "epochs_max": cfg.epochs + cfg.lp_epochs * (strategy == "lp_ft"),
        "best_epoch": res.best_epoch,
        "optimizer_steps": optimizer_steps(res.history, len(data), cfg.batch_size),
        "stopped_early": res.epochs_run < cfg.epochs + cfg.lp_epochs * (strategy == "lp_ft"),
    }
    return model, run


def unlabelled_pool(pool: ImageSet, train: ImageSet, seed: int) -> ImageSet:
    """POOL_SIZE images of the train pool outside this seed's labelled draw, labels dropped."""
    drawn = set(train.ids)
    rest = torch.tensor([i for i, x in enumerate(pool.ids) if x not in drawn])
    g = torch.Generator().manual_seed(seed)
    picked = pool.subset(rest[torch.randperm(len(rest), generator=g)[:POOL_SIZE]])
    return ImageSet(picked.images, None, picked.ids)


def test_accuracy(
    model: Classifier, strategy: str, test: ImageSet, args: argparse.Namespace
) -> float:
    """The one read of the test set for a trained model."""
    cfg = cell_params(strategy, 1, 0, args)
    cache = args.feature_cache if strategy == "linear_probe" else None  # frozen backbone only
    feats = cached_features(model, test, cache, resolve_runtime(cfg, model))
    with torch.no_grad():
        probs = model.head(feats.to(next(model.parameters()).device)).float().softmax(-1)
    labels = test.labels.numpy()  # type: ignore[union-attr]
    return metrics_from_probs(probs.cpu().numpy(), labels, list(FASHION_CLASSES)).accuracy


def select(pool: ImageSet, val: ImageSet, args: argparse.Namespace) -> dict[str, Any]:
    """Choose freeze_bn_stats and the scratch LR on validation (seed 0, 50 labels per class)."""
    train = few_labels(pool, args.select_per_class, 0)
    bn: dict[str, dict[str, float]] = {}
    for freeze in (True, False):
        probe = replace_args(args, freeze_bn=freeze)
        bn[str(freeze).lower()] = {
            s: train_one(s, train, val, 0, probe)[1]["val_accuracy"] for s in FINE_TUNES
        }
    chosen_bn = max(bn, key=lambda k: statistics.fmean(bn[k].values()))
    lrs: dict[str, float] = {}
    for lr in SCRATCH_LRS:
        probe = replace_args(args, scratch_lr=lr, scratch_steps=args.select_scratch_steps)
        lrs[f"{lr:g}"] = train_one("scratch", train, val, 0, probe)[1]["val_accuracy"]
    chosen_lr = float(max(lrs, key=lambda k: lrs[k]))
    return {
        "labels_per_class": args.select_per_class,
        "seed": 0,
        "freeze_bn_stats_val_accuracy": bn,
        "freeze_bn_stats": chosen_bn == "true",
        "scratch_lr_val_accuracy": lrs,
        "scratch_lr_selection_steps": args.select_scratch_steps,
        "scratch_lr": chosen_lr,
    }


def replace_args(args: argparse.Namespace, **changes: Any) -> argparse.Namespace:
    return argparse.Namespace(**{**vars(args), **changes})


def run_cell(
    strategy: str,
    per_class: int,
    pool: ImageSet,
    val: ImageSet,
    test: ImageSet,
    args: argparse.Namespace,
) -> dict[str, Any]:
    """All seeds of one cell, dropping to 1 seed when seed 0 shows 3 would exceed the cap."""
    runs, start, started = [], time.perf_counter(), common.session()
    args.pool = pool
    for seed in range(args.seeds):
        model, run = train_one(strategy, few_labels(pool, per_class, seed), val, seed, args)
        run["test_accuracy"] = test_accuracy(model, strategy, test, args)
        runs.append(run)
        if seed == 0 and (time.perf_counter() - start) * args.seeds > args.max_cell_seconds:
            break
    accs = [r["test_accuracy"] for r in runs]
    row = {
        "strategy": strategy,
        "labels_per_class": per_class,
        "accuracy_mean": statistics.fmean(accs),
        "accuracy_std": statistics.stdev(accs) if len(accs) > 1 else None,
        "seeds": len(runs),
        "seconds": round(time.perf_counter() - start, 1),
        "runs": runs,
        "session": started,  # the commit and start of the invocation that measured this cell
    }
    if len(runs) < args.seeds:
        row["note"] = (
            f"1 seed: seed 0 took {row['seconds']:.0f} s, {args.seeds} seeds would exceed {args.max_cell_seconds:.0f} s"
        )
    return row


def budgets(args: argparse.Namespace) -> dict[str, Any]:
    """Optimizer-step budgets per cell, so a reader sees that scratch was not starved."""
    fine = {
        f"{s}@{p}": math.ceil(10 * p / 64) * cell_params(s, 10 * p, 0, args).epochs
        for s in FINE_TUNES
        for p in args.labels
    }
    return {
        "fine_tune_max_image_steps": fine,
        "longest_fine_tune_steps": max(fine.values()),
        "scratch_max_steps": args.scratch_steps,
        "scratch_patience_steps": SCRATCH_PATIENCE_STEPS,
        "scratch_epoch_images": EPOCH_IMAGES,
    }


def parse() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description="Fashion-MNIST transfer table")
    ap.add_argument("--strategies", nargs="+", default=TABLE, choices=STRATEGIES)
    ap.add_argument("--recipe", type=Path, default=RECIPE_FILE, help="bench/recipe.py's result")
    ap.add_argument(
        "--scratch-match", nargs="*", type=int, default=list(SCRATCH_MATCH),
        help="labels per class scratch tries, in order, until it matches the best cell at 50",
    )  # fmt: skip
    ap.add_argument("--labels", nargs="+", type=int, default=[10, 50, 500])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--backbone", default="efficientnet_lite0")
    ap.add_argument("--image-size", type=int, default=64)
    ap.add_argument("--max-cell-seconds", type=float, default=600.0)
    ap.add_argument(
        "--feature-cache", type=Path, default=Path(tempfile.gettempdir()) / "xfer-bench-features"
    )
    ap.add_argument("--scratch-steps", type=int, default=SCRATCH_STEPS, help="scratch budget")
    ap.add_argument("--select-scratch-steps", type=int, default=500, help="per LR on validation")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--quick", action="store_true", help="smoke run: tiny sizes, not a result")
    ap.add_argument(
        "--resume", action="store_true",
        help="continue an interrupted run of the same code (keeps its selection and finished cells)",
    )  # fmt: skip
    args = ap.parse_args()
    args.epochs, args.test_limit, args.select_per_class = None, None, 50
    args.freeze_bn, args.scratch_lr = True, SCRATCH_LRS[0]  # replaced by the selection
    args.recipe = None
    if any(s in RECIPES for s in args.strategies):
        args.recipe = (
            {"image_size": 32, "changes": {"augment_policy": "trivial_augment"}, "commit": None}
            if args.quick
            else load_recipe(args.recipe)
        )
    if args.quick:
        args.labels, args.seeds, args.epochs, args.test_limit = [2], 1, 1, 200
        args.select_per_class, args.image_size, args.select_scratch_steps = 2, 32, 16
    return args


def code_fingerprint(args: argparse.Namespace) -> str:
    """What a cell's number depends on: this script, the training and model code, the params
    defaults, the chosen recipe and the options that shape a cell. `--resume` keeps only rows
    with the same fingerprint, so a table finished over several sessions is one computation."""
    import hashlib
    import json

    root = Path(__file__).resolve().parent.parent
    files = [Path(__file__), root / "xferlib/data/imageset.py", root / "xferlib/data/fashion.py"]
    files += sorted((root / "xferlib/finetune").glob("*.py"))
    files += sorted((root / "xferlib/models").glob("*.py"))
    h = hashlib.sha256()
    for f in files:
        h.update(f.read_bytes())
    shape = {
        k: (str(v) if isinstance(v, Path) else v)
        for k, v in vars(args).items()
        if k
        in (
            "backbone",
            "image_size",
            "seeds",
            "max_cell_seconds",
            "scratch_steps",
            "select_scratch_steps",
            "quick",
        )
    }
    recipe = None if args.recipe is None else {k: args.recipe[k] for k in ("image_size", "changes")}
    h.update(json.dumps([asdict(FinetuneParams()), shape, recipe], sort_keys=True).encode())
    return h.hexdigest()[:16]


def earlier(args: argparse.Namespace, fingerprint: str) -> dict[str, Any] | None:
    """The interrupted run `--resume` continues: same output file, same code fingerprint."""
    import json

    path = args.out or common.RESULTS / "transfer.json"
    if not args.resume or not path.is_file():
        return None
    body = json.loads(path.read_text())
    if body.get("complete") or body.get("code_fingerprint") != fingerprint:
        print(f"--resume: {path} is complete or from other code; starting afresh", flush=True)
        return None
    return body


def main() -> None:
    common.quiet_env()
    common.start()
    args = parse()
    common.set_torch_threads(args.threads)
    train_all = fashion_imageset("train")
    test = fashion_imageset("test", args.test_limit)
    pool, val = split_pool(train_all, 2 if args.quick else VAL_PER_CLASS)
    args.fingerprint = code_fingerprint(args)
    before = earlier(args, args.fingerprint)
    args.sessions = ([*before["sessions"]] if before else []) + [common.session()]
    with common.sampling_load(30.0) as load:
        selection = before["selection"] if before else select(pool, val, args)
        args.freeze_bn, args.scratch_lr = selection["freeze_bn_stats"], selection["scratch_lr"]
        print(f"selection: {selection}", flush=True)
        rows: list[dict[str, Any]] = list(before["rows"]) if before else []
        done = {(r["strategy"], r["labels_per_class"]) for r in rows}
        cells = [(p, s) for p in args.labels for s in args.strategies if (s, p) not in done]
        for per_class, strategy in cells:
            rows.append(run_cell(strategy, per_class, pool, val, test, args))
            r = rows[-1]
            print(
                f"{strategy:>16} {per_class:>4}/class  {r['accuracy_mean']:.4f}  ({r['seeds']} seeds, {r['seconds']:.0f} s)",
                flush=True,
            )
            # every finished cell is written at once: an interrupted run keeps what it measured
            write(args, test, val, selection, rows, load, complete=False)
        match = scratch_match(
            rows,
            pool,
            val,
            test,
            args,
            lambda: write(args, test, val, selection, rows, load, complete=False),
        )
        write(args, test, val, selection, rows, load, complete=True, match=match)


def scratch_match(
    rows: list[dict[str, Any]],
    pool: ImageSet,
    val: ImageSet,
    test: ImageSet,
    args: argparse.Namespace,
    save: Any,
) -> dict[str, Any] | None:
    """Scratch at more labels per class, in order, until it reaches the best pretrained cell at
    50 per class; the rows join the table, the summary says where it got there (or that it did not)."""
    at50 = [r for r in rows if r["labels_per_class"] == 50 and r["strategy"] != "scratch"]
    if not at50 or not args.scratch_match or "scratch" not in args.strategies:
        return None
    best = max(at50, key=lambda r: r["accuracy_mean"])
    target = best["accuracy_mean"]
    tried = []
    for per_class in args.scratch_match:
        row = next(
            (r for r in rows if r["strategy"] == "scratch" and r["labels_per_class"] == per_class),
            None,
        )
        if row is None:
            row = run_cell("scratch", per_class, pool, val, test, args)
            row["match_search"] = True
            rows.append(row)
            save()
        tried.append(per_class)
        print(
            f"scratch {per_class:>5}/class  {row['accuracy_mean']:.4f} (target {target:.4f})",
            flush=True,
        )
        if row["accuracy_mean"] >= target:
            return {
                "target": target,
                "target_cell": f"{best['strategy']}@50",
                "tried": tried,
                "matched_at": per_class,
            }
    return {
        "target": target,
        "target_cell": f"{best['strategy']}@50",
        "tried": tried,
        "matched_at": None,
    }


def write(
    args: argparse.Namespace,
    test: ImageSet,
    val: ImageSet,
    selection: dict[str, Any],
    rows: list[dict[str, Any]],
    load: common.LoadSampler,
    complete: bool,
    match: dict[str, Any] | None = None,
) -> None:
    common.write_result("transfer", {
        "what": "Fashion-MNIST test accuracy after training on N labelled images per class",
        "method": __doc__.split("Protocol")[1].split("    .venv")[0].strip(),
        "quick": args.quick,
        "complete": complete,
        "config": {
            "backbone": args.backbone, "image_size": args.image_size,
            "test_images": len(test), "validation_images": len(val),
            "labels_per_class": args.labels, "strategies": args.strategies,
            "seeds_requested": args.seeds, "max_cell_seconds": args.max_cell_seconds,
            "example_params": asdict(cell_params("full", 500, 0, args)),
            "threads": torch.get_num_threads(),
            "device": "cuda" if torch.cuda.is_available() else "cpu",
        },
        "budgets": budgets(args),
        "selection": selection,
        "recipe": args.recipe,
        "code_fingerprint": args.fingerprint,
        "sessions": args.sessions,
        "scratch_match": match,
        "rows": rows,
        "load_average_1m": load.summary(),
    }, out=args.out)  # fmt: skip


if __name__ == "__main__":
    main()
