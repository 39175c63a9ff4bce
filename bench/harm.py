"""How well the label-free accuracy estimate tracks the truth (issue 15, the estimation table).

A champion as the product makes one: the default params (efficientnet_lite0 pretrained, 64 px,
`linear_probe`), fine-tuned with `xferlib.finetune.fine_tune` on Fashion-MNIST training images
(IDX from /usr/share/datasets/fashion-mnist, read from disk), early-stopped on a validation split.
Its estimator is fit as registration fits it (`drift.estimate.AccuracyModel` on held-out training
images the model never saw, `drift.reference_size` of them). Then windows of n = 500 test images:
clean, every corruption of the catalogue at severities 1-5, and the two label shifts at
severities 1-5. Per window: ATC (with its 95 % bootstrap interval), AC (mean confidence) and DoC
against the window's true accuracy. Each shifted pool is 1,000 test images corrupted once; its
windows are drawn without replacement (seeded), `--windows` per cell.

    .venv/bin/python bench/harm.py                 # ~10 min on an idle 2-core box
    .venv/bin/python bench/harm.py --quick --out /tmp/harm_smoke.json   # smoke, not a result

Writes bench/results/harm.json. Triage, the label-free candidate and the rollback watch (the rest
of issue 15's bench) are not measured here yet.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

from xferlib.config import Params  # noqa: E402
from xferlib.data.fashion import load_fashion_mnist  # noqa: E402
from xferlib.data.imageset import ImageSet  # noqa: E402
from xferlib.data.shifts import IMAGE_SHIFTS, LABEL_SHIFTS, apply_shift, label_shift  # noqa: E402
from xferlib.drift import AccuracyModel  # noqa: E402

TARGETS = {"atc_mae_max": 0.03, "atc_mae_below_ac": True}
FULL = {
    "train": 5000,
    "val": 1000,
    "pool": 1000,
    "windows": 10,
    "n": 500,
    "severities": [1, 2, 3, 4, 5],
}
QUICK = {"train": 600, "val": 200, "pool": 200, "windows": 2, "n": 100, "severities": [3]}


def images(split: str) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = load_fashion_mnist(split=split)
    imgs = torch.from_numpy(np.ascontiguousarray(x)).unsqueeze(1).expand(-1, 3, -1, -1)
    return imgs.contiguous(), torch.from_numpy(y.astype(np.int64))


def champion(args: argparse.Namespace, x: torch.Tensor, y: torch.Tensor) -> tuple[Any, dict]:
    """The product's default model, trained on the first `train` images, validated on the next."""
    from xferlib.finetune import fine_tune
    from xferlib.models import Classifier, create_backbone

    p = Params()
    torch.manual_seed(p.finetune.seed)
    model = Classifier(
        create_backbone(p.model.backbone, pretrained=True, image_size=p.model.image_size), 10
    )
    n, v = args.train, args.val
    train, val = ImageSet(x[:n], y[:n]), ImageSet(x[n : n + v], y[n : n + v])
    cfg = p.finetune
    if args.quick:
        import dataclasses

        cfg = dataclasses.replace(cfg, epochs=2)
    t0 = time.perf_counter()
    res = fine_tune(model, train, val, cfg)
    return model, {
        "backbone": p.model.backbone,
        "image_size": p.model.image_size,
        "strategy": cfg.strategy,
        "epochs_run": len(res.history),
        "val_accuracy": res.best_val_accuracy,
        "train_seconds": round(time.perf_counter() - t0, 1),
    }


def scores(model: Any, x: torch.Tensor) -> np.ndarray:
    from xferlib.models.predictor import Predictor

    return Predictor.from_classifier(model).infer(x).probs


def windows(
    fit: AccuracyModel, probs: np.ndarray, y: np.ndarray, args: argparse.Namespace, seed: int
) -> list[dict[str, float]]:
    rng = np.random.default_rng(seed)
    out = []
    order = rng.permutation(len(y))
    for w in range(args.windows):
        if (w + 1) * args.n <= len(y):  # disjoint windows while the pool lasts, then fresh draws
            idx = order[w * args.n : (w + 1) * args.n]
        else:
            idx = rng.choice(len(y), min(args.n, len(y)), replace=False)
        p, t = probs[idx], y[idx]
        est = fit.estimate(p.max(1), seed=seed * 1000 + w)
        truth = float((p.argmax(1) == t).mean())
        out.append({"truth": truth, "atc": est.accuracy, "low": est.low, "high": est.high,
                    "ac": est.average_confidence, "doc": est.doc})  # fmt: skip
    return out


def summarise(cells: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean absolute error of each estimator over every window, overall and per group."""

    def mae(ws: list[dict[str, float]], key: str) -> float:
        return float(np.mean([abs(w[key] - w["truth"]) for w in ws]))

    def block(ws: list[dict[str, float]]) -> dict[str, Any]:
        cover = float(np.mean([w["low"] <= w["truth"] <= w["high"] for w in ws]))
        return {"windows": len(ws), **{f"{k}_mae": mae(ws, k) for k in ("atc", "ac", "doc")},
                "atc_interval_coverage": cover}  # fmt: skip

    every = [w for c in cells for w in c["windows"]]
    groups: dict[str, list[dict[str, float]]] = {}
    for c in cells:
        key = (
            "clean"
            if c["kind"] == "clean"
            else (
                "label shift"
                if c["kind"] in LABEL_SHIFTS
                else f"corruption severity {c['severity']}"
            )
        )
        groups.setdefault(key, []).extend(c["windows"])
    return {"all": block(every), "by_group": {k: block(v) for k, v in sorted(groups.items())}}


def parse() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smoke run: tiny sizes, not a result")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    for k, v in (QUICK if args.quick else FULL).items():
        setattr(args, k, v)
    return args


def main() -> None:
    common.start()
    common.quiet_env()
    args = parse()
    common.set_torch_threads(args.threads, args.quick)
    t0 = time.perf_counter()
    xtr, ytr = images("train")
    xte, yte = images("test")
    model, setup = champion(args, xtr, ytr)
    p = Params()
    start = args.train + args.val
    ref = slice(start, start + p.drift.reference_size if not args.quick else start + 300)
    ref_probs = scores(model, xtr[ref])
    fit = AccuracyModel.fit(ref_probs.max(1), ref_probs.argmax(1) == ytr[ref].numpy())
    setup |= {"reference_images": len(ref_probs), "reference_accuracy": fit.accuracy,
              "atc_threshold": fit.threshold}  # fmt: skip
    pool_x, pool_y = xte[: args.pool], yte[: args.pool].numpy()
    cells: list[dict[str, Any]] = []
    with common.sampling_load() as load:
        clean = scores(model, pool_x)
        cells.append(
            {"kind": "clean", "severity": 0, "windows": windows(fit, clean, pool_y, args, 0)}
        )
        kinds = IMAGE_SHIFTS if not args.quick else IMAGE_SHIFTS[:2]
        for k, kind in enumerate(kinds):
            for s in args.severities:
                probs = scores(model, apply_shift(pool_x, kind, s, seed=k))
                ws = windows(fit, probs, pool_y, args, 100 * k + s)
                cells.append({"kind": kind, "severity": s, "windows": ws})
            print(f"{kind}: done ({time.perf_counter() - t0:.0f} s)", flush=True)
        big_x, big_y = xte[args.pool :], yte[args.pool :].numpy()
        big = scores(model, big_x) if not args.quick else scores(model, big_x[:1000])
        big_y = big_y[: len(big)]
        for k, kind in enumerate(LABEL_SHIFTS):
            for s in args.severities:
                keep = label_shift(big_y, kind, s, seed=k)
                ws = windows(fit, big[keep], big_y[keep], args, 900 + 10 * k + s)
                cells.append({"kind": kind, "severity": s, "windows": ws})
    summary = summarise(cells)
    result = {
        "what": "label-free accuracy estimates of windows (ATC with its interval, AC, DoC) against "
        "their true accuracy, for the product's default champion",
        "method": "champion: default params fine_tune on Fashion-MNIST train images; estimator fit "
        "on drift.reference_size held-out train images; windows of n test images without "
        "replacement from a pool corrupted once per (kind, severity), or from the label-shifted "
        "rest of the test set",
        "quick": args.quick,
        "targets": TARGETS,
        "summary": summary,
        "met": {
            "atc_mae_max": summary["all"]["atc_mae"] <= TARGETS["atc_mae_max"],
            "atc_mae_below_ac": summary["all"]["atc_mae"] < summary["all"]["ac_mae"],
        },
        "setup": setup | {k: getattr(args, k) for k in FULL},
        "cells": cells,
        "seconds": round(time.perf_counter() - t0, 1),
        "load_average_1m": load.summary(),
    }
    common.write_result("harm", result, args.out)
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
