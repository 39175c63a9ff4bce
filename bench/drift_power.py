"""Detection power and false alarms of xfer's drift verdict vs Evidently's preset, on real features.

In the manner of "Failing Loudly" (Rabanser et al. 2019): Fashion-MNIST images (IDX from
/usr/share/datasets/fashion-mnist), upsampled to 64 px, through the pretrained efficientnet_lite0
backbone (`xferlib.models`), a logistic-regression head fitted on source features for
pred / max_softmax, the champion-style PCA for emb_*, and the image properties. Features of each
pool (reference, clean, and every shift kind x severity) are computed ONCE and cached. Each
trial draws a fresh reference of `drift.reference_size` rows and a window of n rows, without
replacement: for a clean row both from one pool (held-out train rows, not the head's, plus test
rows), so the pair is exchangeable and, given the pool, trials are independent with an alarm
probability <= alpha (a row's alarm count is binomial); for a shifted row the reference from the
held-out train rows and the window from the shifted pool. Per trial:
- xfer: `check_drift(..., render=False)` (the production verdict, default params), and
- Evidently: the DataDriftPreset's dataset verdict on the same columns (its own default column
  tests, share of drifted columns >= 0.5; `preset_verdict`, checked equal to the full Report in
  tests/drift/test_evidently.py), plus "any column drifted", on the first `--evidently-trials`
  trials of a row only (it costs ~1 s a call).
Each clean row runs `--clean-trials` (>= 400) windows, so a false-alarm rate of 2 x alpha could not
pass for alpha (P < 0.1 % at 400); the render adds each row's binomial 95 % upper bound.
Detection rows keep fewer trials (`--trials`); every row says how many it ran. One extra cell
measures clean windows against a reference made of the head's own training rows (the
overconfidence trap documented in xferlib/drift/reference.py).

    .venv/bin/python bench/drift_power.py          # full grid, ~12-14 min on an idle 2-core box
    .venv/bin/python bench/drift_power.py --quick --out /tmp/drift_power_smoke.json   # smoke
Writes bench/results/drift_power.json (rendered by bench/render_drift.py).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

from xferlib.config import DriftParams  # noqa: E402
from xferlib.data.fashion import load_fashion_mnist  # noqa: E402
from xferlib.data.imageset import resize_uint8  # noqa: E402
from xferlib.data.shifts import IMAGE_SHIFTS, LABEL_SHIFTS, apply_shift, label_shift  # noqa: E402
from xferlib.drift import (  # noqa: E402
    PCAProjector,
    check_drift,
    feature_columns,
    image_properties,
    monitoring_frame,
)

MIN_CLEAN_TRIALS = 400  # at alpha 0.05, 400 windows put 2 x alpha above the binomial bound
TARGETS = {"false_alarm_max": 0.05, "detect_min_n500_sev3": 0.9, "knockout_min_n1000": 0.9}
TARGET_KINDS = ("gaussian_noise", "defocus_blur", "brightness", "contrast", "rotate")
FULL = {
    "sizes": "50,100,200,500,1000",
    "detect_sizes": "100,500,1000",
    "kinds": ",".join(TARGET_KINDS),
}
QUICK = {"sizes": "50,200", "detect_sizes": "500", "kinds": "gaussian_noise"}
POOLS = {"image_size": 64, "head_rows": 5000, "reference_pool": 4000, "clean_pool": 4000,
         "shift_pool": 1500}  # fmt: skip
QUICK_POOLS = {"image_size": 32, "head_rows": 1000, "reference_pool": 2500, "clean_pool": 1000,
               "shift_pool": 600}  # fmt: skip


def fashion(split: str, size: int) -> tuple[torch.Tensor, np.ndarray]:
    x, y = load_fashion_mnist(split=split)
    imgs = torch.from_numpy(np.ascontiguousarray(x)).unsqueeze(1).expand(-1, 3, -1, -1)
    return resize_uint8(imgs.contiguous(), (size, size)), y.astype(np.int64)


class Embedder:
    """Backbone features, cached per pool name as .npz (features float16 + properties)."""

    def __init__(self, image_size: int, cache: Path) -> None:
        from xferlib.models import create_backbone

        self.bb = create_backbone("efficientnet_lite0", image_size=image_size)
        self.module = self.bb.module.eval().to(memory_format=torch.channels_last)
        self.cache = cache
        cache.mkdir(parents=True, exist_ok=True)

    def __call__(self, name: str, images: torch.Tensor) -> tuple[np.ndarray, pd.DataFrame]:
        path = self.cache / f"{name}-{len(images)}-{images.shape[-1]}px.npz"
        if path.exists():
            with np.load(path, allow_pickle=False) as z:
                props = pd.DataFrame({k[2:]: z[k] for k in z.files if k.startswith("p_")})
                return z["features"].astype(np.float32), props
        with torch.inference_mode():
            feats = torch.cat([self.module(self.bb.preprocess(b).contiguous(memory_format=torch.channels_last))
                               for b in images.split(256)]).numpy()  # fmt: skip
        props = image_properties(images, np.full(len(images), 28), np.full(len(images), 28))
        np.savez(
            path,
            features=feats.astype(np.float16),
            **{f"p_{c}": props[c].to_numpy() for c in props},
        )
        return feats, props


def fit_head(feats: np.ndarray, y: np.ndarray) -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=300, C=0.05)).fit(feats, y)


def build_pools(args: argparse.Namespace, cfg: DriftParams) -> tuple[dict[str, pd.DataFrame], dict]:
    """{"reference", "train_rows", (kind, severity) ...: frame} and setup info, features cached."""
    emb = Embedder(args.image_size, Path(args.cache))
    xtr, ytr = fashion("train", args.image_size)
    xte, yte = fashion("test", args.image_size)
    n_head, n_clean = args.head_rows, args.clean_pool
    f_head, p_head = emb("head", xtr[:n_head])
    head = fit_head(f_head, ytr[:n_head])
    pca = PCAProjector.fit(f_head, cfg.pca_components)

    def frame(feats: np.ndarray, props: pd.DataFrame) -> pd.DataFrame:
        return monitoring_frame(head.predict_proba(feats), feats, pca, props)

    pools: dict[Any, pd.DataFrame] = {
        "reference": frame(*emb("reference", xtr[n_head : n_head + args.reference_pool])),
        "train_rows": frame(f_head, p_head),
    }
    f_clean, p_clean = emb("clean", xte[:n_clean])
    pools["clean_test"] = frame(f_clean, p_clean)
    # clean rows draw reference and window together from this one pool: the pair is then
    # exchangeable, so each trial alarms with probability <= alpha given the pool (a window drawn
    # from a fixed pool against a fixed reference is not: both pools' own sampling noise is shared
    # by every trial, and with a 1,000-row pool that alone gave 8-10 % "false" alarms)
    pools[("clean", 0)] = pd.concat([pools["reference"], pools["clean_test"]], ignore_index=True)
    for kind in LABEL_SHIFTS:
        for sev in args.label_severities:
            keep = label_shift(yte[:n_clean], kind, sev, seed=sev, target_class=args.target_class)
            pools[(kind, sev)] = pools["clean_test"].iloc[keep].reset_index(drop=True)
    base = xte[n_clean : n_clean + args.shift_pool]
    for kind in args.kinds:
        for sev in args.severities:
            pools[(kind, sev)] = frame(
                *emb(f"{kind}-{sev}", apply_shift(base, kind, sev, seed=sev))
            )
    acc = float((head.predict(f_clean) == yte[:n_clean]).mean())
    return pools, {"clean_accuracy": acc, "backbone": emb.bb.provenance}


def draw(pool: pd.DataFrame, n: int, rng: np.random.Generator) -> pd.DataFrame:
    return pool.iloc[rng.choice(len(pool), n, replace=False)].reset_index(drop=True)


def run_cell(
    refs: pd.DataFrame | None,
    pool: pd.DataFrame,
    n: int,
    trials: int,
    evid_trials: int,
    cfg: DriftParams,
    seed: int,
) -> dict[str, Any]:
    """`trials` independent (reference, window) draws: xfer's alarms per test, Evidently's on a few.

    `refs=None`: reference and window drawn together (disjoint) from `pool` (the clean rows).
    """
    from xferlib.drift.evidently_adapter import preset_verdict

    rng = np.random.default_rng(seed)
    num = [c for c in feature_columns(pool) if c != "pred"]
    alarms, per_test, evid, anycol = 0, {}, 0, 0
    m = min(cfg.reference_size, len(refs) if refs is not None else len(pool) - n)
    for t in range(trials):
        if refs is None:  # both from `pool`, disjoint
            both = draw(pool, m + n, rng)
            ref, cur = both.iloc[:m], both.iloc[m:].reset_index(drop=True)
        else:
            ref, cur = draw(refs, m, rng), draw(pool, n, rng)
        trial_cfg = DriftParams(**{**cfg.__dict__, "seed": seed * 10_000 + t})  # fresh permutations
        report = check_drift(ref, cur, trial_cfg, reference_version="bench", render=False)
        alarms += report.drift
        for name, test in report.tests.items():
            per_test[name] = per_test.get(name, 0) + int(test.drift)
        if t < evid_trials:
            dataset, share = preset_verdict(ref, cur, num, ["pred"])
            evid, anycol = evid + dataset, anycol + (share > 0)
    return {
        "trials": trials,
        "alarms": int(alarms),
        "rate": alarms / trials,
        "alarms_per_test": per_test,
        "evidently": {"trials": evid_trials, "alarms": int(evid), "any_column": int(anycol)},
    }


def run_grid(pools: dict, args: argparse.Namespace, cfg: DriftParams) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    cells = sorted((k for k in pools if isinstance(k, tuple)), key=lambda k: (k[0] != "clean", k))
    for i, (kind, sev) in enumerate(cells):
        clean = kind == "clean"
        sizes = args.sizes if clean else args.detect_sizes
        trials = args.clean_trials if clean else args.trials
        evid = min(trials, args.evidently_trials)
        for n in sizes:
            if n > len(pools[(kind, sev)]):
                continue
            t = time.perf_counter()
            row = {"kind": kind, "severity": sev, "n": n, "pool": len(pools[(kind, sev)])}
            refs = None if clean else pools["reference"]
            row |= run_cell(refs, pools[(kind, sev)], n, trials, evid, cfg, i * 100 + n)
            rows.append(row | {"seconds": round(time.perf_counter() - t, 1)})
            print(
                json.dumps({k: v for k, v in rows[-1].items() if k != "alarms_per_test"}),
                flush=True,
            )
    return rows


def summarise(rows: list[dict[str, Any]], alpha: float) -> dict[str, Any]:
    def rate(kind: str, sev: int, n: int) -> float | None:
        hit = [r["rate"] for r in rows if (r["kind"], r["severity"], r["n"]) == (kind, sev, n)]
        return hit[0] if hit else None

    clean = [r for r in rows if r["kind"] == "clean"]
    det = {k: rate(k, 3, 500) for k in TARGET_KINDS if rate(k, 3, 500) is not None}
    ko = rate("knockout", 5, 1000)
    return {
        "false_alarm_by_n": {str(r["n"]): r["rate"] for r in clean},
        "detection_n500_sev3": det,
        "knockout_sev5_n1000": ko,
        "meets_false_alarm_target": bool(clean) and max(r["rate"] for r in clean) <= alpha,
        "meets_detection_target": bool(det)
        and min(det.values()) >= TARGETS["detect_min_n500_sev3"],
        "meets_knockout_target": ko is not None and ko >= TARGETS["knockout_min_n1000"],
    }


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smoke run: 2 sizes, 1 shift, few trials")
    ap.add_argument("--out", type=Path, default=None, help="write here, not bench/results/")
    ap.add_argument("--trials", type=int, default=None, help="trials of each detection row (40)")
    ap.add_argument(
        "--clean-trials", type=int, default=None, help=f"clean rows (>= {MIN_CLEAN_TRIALS})"
    )
    ap.add_argument(
        "--evidently-trials", type=int, default=None, help="Evidently runs per row (25)"
    )
    ap.add_argument("--sizes", default=None, help=f"clean window sizes ({FULL['sizes']})")
    ap.add_argument(
        "--detect-sizes", default=None, help=f"shifted window sizes ({FULL['detect_sizes']})"
    )
    ap.add_argument(
        "--severities",
        default="3",
        help="image-shift severities (label shifts: --label-severities)",
    )
    ap.add_argument("--label-severities", default="3,5")
    ap.add_argument(
        "--kinds", default=None, help=f"image corruptions of {IMAGE_SHIFTS} ({FULL['kinds']})"
    )
    for name, full in POOLS.items():
        ap.add_argument(f"--{name.replace('_', '-')}", type=int, default=None, help=f"({full})")
    ap.add_argument(
        "--target-class", type=int, default=0, help="class of the label shifts (0 = T-shirt/top)"
    )
    ap.add_argument("--cache", default="/tmp/xfer-drift-power-cache")
    args = ap.parse_args()
    grid = QUICK if args.quick else FULL
    for name, full in POOLS.items():  # quick: smaller pools and images, so features take ~1 min
        if getattr(args, name) is None:
            setattr(args, name, QUICK_POOLS[name] if args.quick else full)
    quick_trials = (10, 20, 5) if args.quick else (40, MIN_CLEAN_TRIALS, 25)
    args.trials = args.trials or quick_trials[0]
    args.clean_trials = args.clean_trials or quick_trials[1]
    args.evidently_trials = (
        args.evidently_trials if args.evidently_trials is not None else quick_trials[2]
    )
    ints = lambda text: [int(s) for s in text.split(",") if s]  # noqa: E731
    args.sizes, args.detect_sizes = (
        ints(args.sizes or grid["sizes"]),
        ints(args.detect_sizes or grid["detect_sizes"]),
    )
    args.severities, args.label_severities = ints(args.severities), ints(args.label_severities)
    args.kinds = [k for k in (args.kinds or grid["kinds"]).split(",") if k]
    if args.quick:
        args.severities, args.label_severities = [3], [5]
    elif args.clean_trials < MIN_CLEAN_TRIALS:
        ap.error(
            f"--clean-trials {args.clean_trials} cannot tell alpha from 2 x alpha; use >= {MIN_CLEAN_TRIALS}"
        )
    return args


def main() -> None:
    common.start()
    common.quiet_env()
    args = parse_args()
    torch.set_num_threads(2)
    # min_window is lowered so small windows are tested, not reported as insufficient_data.
    cfg = DriftParams(min_window=min(args.sizes + args.detect_sizes))
    t0 = time.perf_counter()
    pools, info = build_pools(args, cfg)
    info["features_seconds"] = round(time.perf_counter() - t0, 1)
    print(
        f"pools ready in {info['features_seconds']:.0f} s; clean accuracy {info['clean_accuracy']:.3f}",
        flush=True,
    )
    with common.sampling_load() as load:
        rows = run_grid(pools, args, cfg)
        trap = {"n": 500} | run_cell(pools["train_rows"], pools["clean_test"], 500, args.trials,
                                     min(args.trials, args.evidently_trials), cfg, seed=7)  # fmt: skip
    result = {
        "what": "share of windows the verdict calls drifted: clean windows (false alarms) and "
        "shifted ones (detection), xfer's check_drift vs Evidently's DataDriftPreset",
        "method": "per trial a fresh reference (drift.reference_size rows) and a window of n rows, "
        "without replacement: for clean rows both from one pool (held-out train + test rows), for "
        "shifted rows the reference from the held-out train rows and the window from the shifted "
        "pool; Evidently on the first evidently.trials trials of each row",
        "quick": args.quick,
        "summary": summarise(rows, cfg.alpha),
        "train_rows_reference_clean_n500": trap,
        "targets": TARGETS | {"false_alarm_max": cfg.alpha},
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "setup": info
        | {
            "alpha": cfg.alpha,
            "min_window": cfg.min_window,
            "permutations": cfg.permutations,
            "reference_size": cfg.reference_size,
            "pca_components": cfg.pca_components,
            "columns": feature_columns(pools["reference"]),
        },  # fmt: skip
        "rows": rows,
        "seconds": round(time.perf_counter() - t0, 1),
        "load_average_1m": load.summary(),
        "machine": common.machine(),
    }
    common.write_result("drift_power", result, args.out)
    print(json.dumps(result["summary"], indent=2))


if __name__ == "__main__":
    main()
