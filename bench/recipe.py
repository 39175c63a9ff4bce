"""Choosing the transfer recipe on validation: each ingredient alone, then together (issue 17).

Protocol (the test set is never read here; bench/transfer.py reads it for the chosen recipe):
- Splits drawn once from Fashion-MNIST's 60k train set, disjoint: validation (VAL_PER_CLASS per
  class, early stopping and best-epoch restore, as in bench/transfer.py), a selection split
  (SELECT_PER_CLASS per class) that scores every configuration, and the labelled draws
  (LABELS_PER_CLASS per class, one per seed) from the rest. The semi-supervised rows take an
  unlabelled pool of POOL_SIZE images from what remains, labels dropped.
- Base: `full` fine-tuning of the pretrained backbone exactly as bench/transfer.py's cell (64 px,
  flip-and-shift augmentation, fixed image budget, freeze_bn_stats on).
- Ablation: one ingredient changed at a time (resolution, augmentation policy, random erasing,
  MixUp/CutMix, label smoothing, warm-up, layer-wise LR decay, EMA, BatchNorm statistics, LP-FT,
  a longer budget), every row over the same seeds.
- Together: every ingredient whose mean selection accuracy beat the base, at the best resolution
  and with the longer budget when that helped; then the semi-supervised recipe (teacher ->
  pseudo-labels -> student) on top of it.

    .venv/bin/python bench/recipe.py --threads 1           # the ablation (about an hour)
    .venv/bin/python bench/recipe.py --quick --out /tmp/recipe_smoke.json   # ~1 min
Writes bench/results/recipe.json: per configuration the params changed, selection and validation
accuracy per seed, seconds; the chosen recipe; provenance.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
from transfer import fashion_imageset, per_class_draw  # noqa: E402

from xferlib.config import FinetuneParams  # noqa: E402
from xferlib.data.fashion import FASHION_CLASSES  # noqa: E402
from xferlib.data.imageset import ImageSet  # noqa: E402
from xferlib.finetune import fine_tune  # noqa: E402
from xferlib.finetune.semi import self_train  # noqa: E402
from xferlib.models import Classifier, create_backbone  # noqa: E402
from xferlib.models.predictor import Predictor  # noqa: E402

VAL_PER_CLASS = 50
SELECT_PER_CLASS = 200
LABELS_PER_CLASS = 50
POOL_SIZE = 10_000
SPLIT_SEED = 20_000
BASE_EPOCHS = 8  # bench/transfer.py's full cell at 50 per class: ceil(4000 / 500)
LONG_EPOCHS = 24
BASE_SIZE = 64

BASE = FinetuneParams(
    strategy="full",
    epochs=BASE_EPOCHS,
    lp_epochs=0,
    batch_size=64,
    lr_head=3.0e-3,
    lr_backbone=3.0e-4,
    weight_decay=1.0e-4,
    augment=True,
    freeze_bn_stats=True,
    device="auto",
)
# (name, image size, params changed): one ingredient each
ABLATION: list[tuple[str, int, dict[str, Any]]] = [
    ("base", BASE_SIZE, {}),
    ("size_96", 96, {}),
    ("size_128", 128, {}),
    ("trivial_augment", BASE_SIZE, {"augment_policy": "trivial_augment"}),
    ("rand_augment", BASE_SIZE, {"augment_policy": "rand_augment"}),
    ("random_erasing", BASE_SIZE, {"random_erasing": 0.25}),
    ("mixup_cutmix", BASE_SIZE, {"mixup_alpha": 0.2, "cutmix_alpha": 1.0}),
    ("label_smoothing", BASE_SIZE, {"label_smoothing": 0.1}),
    ("warmup", BASE_SIZE, {"warmup_epochs": 1}),
    ("layer_decay", BASE_SIZE, {"layer_decay": 0.8, "lr_backbone": 1.0e-3}),
    ("ema", BASE_SIZE, {"ema_decay": 0.98}),
    ("bn_stats_train", BASE_SIZE, {"freeze_bn_stats": False}),
    ("lp_ft", BASE_SIZE, {"strategy": "lp_ft", "lp_epochs": 50, "lr_head": 1.0e-2}),
    ("long", BASE_SIZE, {"epochs": LONG_EPOCHS}),
]
COMBINABLE = {  # ingredients that "together" may stack (size and budget are chosen separately)
    "trivial_augment", "rand_augment", "random_erasing", "mixup_cutmix", "label_smoothing",
    "warmup", "layer_decay", "ema", "bn_stats_train", "lp_ft",
}  # fmt: skip


@dataclasses.dataclass
class Splits:
    val: ImageSet
    select: ImageSet
    rest: ImageSet  # labelled draws and the unlabelled pool come from here


def make_splits(train: ImageSet, quick: bool) -> Splits:
    assert train.labels is not None
    val_n, sel_n = (2, 5) if quick else (VAL_PER_CLASS, SELECT_PER_CLASS)
    held = per_class_draw(train.labels, val_n + sel_n, SPLIT_SEED)
    per = held.view(len(FASHION_CLASSES), -1)
    val_idx, sel_idx = per[:, :val_n].flatten(), per[:, val_n:].flatten()
    keep = torch.ones(len(train), dtype=torch.bool)
    keep[held] = False
    return Splits(
        train.subset(val_idx), train.subset(sel_idx), train.subset(keep.nonzero().flatten())
    )


def labelled(rest: ImageSet, per_class: int, seed: int) -> tuple[ImageSet, ImageSet]:
    """(labelled draw, unlabelled pool of POOL_SIZE without labels) for one seed, disjoint."""
    assert rest.labels is not None
    idx = per_class_draw(rest.labels, per_class, seed)
    left = torch.ones(len(rest), dtype=torch.bool)
    left[idx] = False
    others = left.nonzero().flatten()
    g = torch.Generator().manual_seed(seed)
    pool = rest.subset(others[torch.randperm(len(others), generator=g)[:POOL_SIZE]])
    return rest.subset(idx), ImageSet(pool.images, None, pool.ids)


def accuracy(model: Classifier, images: ImageSet) -> float:
    probs = Predictor.from_classifier(model).predict_proba(images)
    return float((probs.argmax(1) == images.labels.numpy()).mean())  # type: ignore[union-attr]


def run_config(
    name: str, size: int, changes: dict[str, Any], splits: Splits, args: argparse.Namespace
) -> dict[str, Any]:
    """Every seed of one configuration: selection and validation accuracy, seconds."""
    semi = changes.get("semi_supervised", "none") != "none"
    runs = []
    for seed in range(args.seeds):
        train, pool = labelled(splits.rest, args.per_class, seed)
        cfg = dataclasses.replace(BASE, seed=seed, **changes)
        if args.quick:
            cfg = dataclasses.replace(cfg, epochs=1, lp_epochs=min(cfg.lp_epochs, 1))
        torch.manual_seed(seed)
        model = Classifier(create_backbone(args.backbone, image_size=size), len(FASHION_CLASSES))
        t0 = time.perf_counter()
        extra: dict[str, Any] = {}
        if semi:
            res = self_train(model, train, pool, splits.val, cfg)
            extra = {"pseudo_labels": res.pseudo.to_dict(), "kept": res.kept}
            best = (res.student or res.teacher).best_val_accuracy
        else:
            best = fine_tune(model, train, splits.val, cfg).best_val_accuracy
        runs.append({
            "seed": seed, "selection_accuracy": accuracy(model, splits.select),
            "val_accuracy": best, "seconds": round(time.perf_counter() - t0, 1), **extra,
        })  # fmt: skip
    accs = [r["selection_accuracy"] for r in runs]
    row = {
        "name": name,
        "image_size": size,
        "changes": changes,
        "selection_accuracy_mean": statistics.fmean(accs),
        "runs": runs,
    }
    print(
        f"{name:>18} {size:>4}px  {row['selection_accuracy_mean']:.4f}  {[round(a, 4) for a in accs]}",
        flush=True,
    )
    return row


def together(rows: list[dict[str, Any]]) -> tuple[str, int, dict[str, Any]]:
    """The chosen recipe: the best size, every combinable ingredient that beat the base, and the
    longer budget when it helped. Between the two augmentation policies only the better one."""
    score = {r["name"]: r["selection_accuracy_mean"] for r in rows}
    base = score["base"]
    sizes = {BASE_SIZE: base, 96: score["size_96"], 128: score["size_128"]}
    size = max(sizes, key=lambda s: sizes[s])
    wins = [n for n in COMBINABLE if score[n] > base]
    if "trivial_augment" in wins and "rand_augment" in wins:
        wins.remove(
            "trivial_augment"
            if score["rand_augment"] >= score["trivial_augment"]
            else "rand_augment"
        )
    changes: dict[str, Any] = {}
    for name, _, ch in ABLATION:
        if name in wins:
            changes.update(ch)
    if score["long"] > base:
        changes["epochs"] = LONG_EPOCHS
    return "together", size, changes


def parse() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description="choose the transfer recipe on validation")
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--backbone", default="efficientnet_lite0")
    ap.add_argument("--only", nargs="+", default=None, help="ablation rows to run (default: all)")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--quick", action="store_true", help="smoke run: tiny sizes, not a result")
    args = ap.parse_args()
    args.per_class = 2 if args.quick else LABELS_PER_CLASS
    if args.quick:
        args.seeds = 1
    return args


def main() -> None:
    common.quiet_env()
    common.start()
    args = parse()
    common.set_torch_threads(args.threads, args.quick)
    splits = make_splits(fashion_imageset("train"), args.quick)
    plan = [a for a in ABLATION if args.only is None or a[0] in args.only]
    rows: list[dict[str, Any]] = []
    with common.sampling_load(30.0) as load:
        for name, size, changes in plan:
            rows.append(run_config(name, size, changes, splits, args))
            write(args, splits, rows, None, load, complete=False)
        chosen = None
        if args.only is None:
            chosen = together(rows)
            rows.append(run_config(*chosen, splits, args))
            write(args, splits, rows, chosen, load, complete=False)
            semi = {**chosen[2], "semi_supervised": "pseudo_label"}
            rows.append(run_config("together_semi", chosen[1], semi, splits, args))
        write(args, splits, rows, chosen, load, complete=args.only is None)


def write(
    args: argparse.Namespace,
    splits: Splits,
    rows: list[dict[str, Any]],
    chosen: tuple[str, int, dict[str, Any]] | None,
    load: common.LoadSampler,
    complete: bool,
) -> None:
    common.write_result("recipe", {
        "what": f"selection accuracy (held-out train images, never test) after fine-tuning on {args.per_class} labels per class",
        "method": __doc__.split("Protocol")[1].split("    .venv")[0].strip(),
        "quick": args.quick,
        "complete": complete,
        "config": {
            "backbone": args.backbone, "labels_per_class": args.per_class, "seeds": args.seeds,
            "validation_images": len(splits.val), "selection_images": len(splits.select),
            "unlabelled_pool": POOL_SIZE, "base_params": dataclasses.asdict(BASE),
            "base_image_size": BASE_SIZE, "threads": torch.get_num_threads(),
            "device": "cuda" if torch.cuda.is_available() else "cpu",
        },
        "rows": rows,
        "chosen": None if chosen is None else {"image_size": chosen[1], "changes": chosen[2]},
        "load_average_1m": load.summary(),
    }, out=args.out)  # fmt: skip


if __name__ == "__main__":
    main()
