"""Detection power and false alarms of xfer's drift verdict vs Evidently's preset, on real features.

In the manner of "Failing Loudly" (Rabanser et al. 2019): Fashion-MNIST images (IDX from
/usr/share/datasets/fashion-mnist), upsampled to 64 px, through the pretrained efficientnet_lite0
backbone (`xferlib.models`), a logistic-regression head fitted on source features for
pred / max_softmax, the champion-style PCA for emb_*, and the image properties. Features of each
pool (clean, and every shift kind x severity) are computed ONCE and cached; each trial then draws a
window of n rows from a pool without replacement and runs
- xfer: `check_drift(..., render=False)` (the production verdict), and
- Evidently: the DataDriftPreset's dataset verdict on the same columns (its own default column
  tests, share of drifted columns >= 0.5; `preset_verdict`, checked equal to the full Report in
  tests/drift/test_evidently.py), plus "any column drifted" for reference.
Reference: 2000 held-out source rows (not the head's training rows). Clean windows come from the
test split. One extra cell measures clean windows against a reference made of the head's own
training rows (the overconfidence trap documented in xferlib/drift/reference.py).

    .venv/bin/python bench/drift_power.py                       # full grid (see --help)
    .venv/bin/python bench/drift_power.py --trials 30 --sizes 100,500,1000 --severities 3
"""

from __future__ import annotations

import argparse
import gzip
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from xferlib.config import DriftParams
from xferlib.data.imageset import resize_uint8
from xferlib.data.shifts import IMAGE_SHIFTS, LABEL_SHIFTS, apply_shift, label_shift
from xferlib.drift import (
    PCAProjector,
    check_drift,
    feature_columns,
    image_properties,
    monitoring_frame,
)
from xferlib.drift.evidently_adapter import preset_verdict

FASHION = Path("/usr/share/datasets/fashion-mnist")
TARGETS = {"false_alarm_max": 0.05, "detect_min_n500_sev3": 0.9, "knockout_min_n1000": 0.9}
TARGET_KINDS = ("gaussian_noise", "defocus_blur", "brightness", "contrast", "rotate")


def read_idx(path: Path) -> np.ndarray:
    """IDX: zero bytes, dtype code, number of dims (byte 3), big-endian int32 sizes, then data."""
    raw = gzip.decompress(path.read_bytes())
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def load_split(split: str, size: int) -> tuple[torch.Tensor, np.ndarray]:
    x = read_idx(FASHION / f"{split}-images-idx3-ubyte.gz")
    y = read_idx(FASHION / f"{split}-labels-idx1-ubyte.gz").astype(np.int64)
    imgs = torch.from_numpy(x.copy()).unsqueeze(1).expand(-1, 3, -1, -1)
    return resize_uint8(imgs, (size, size)), y


class Embedder:
    """Backbone features, cached per pool name as .npz (features float16 + properties)."""

    def __init__(self, image_size: int, cache: Path) -> None:
        from xferlib.models import create_backbone

        self.bb = create_backbone("efficientnet_lite0", image_size=image_size)
        self.module = self.bb.module.eval().to(memory_format=torch.channels_last)
        self.cache = cache
        cache.mkdir(parents=True, exist_ok=True)

    def __call__(self, name: str, images: torch.Tensor) -> tuple[np.ndarray, pd.DataFrame]:
        path = self.cache / f"{name}.npz"
        if path.exists():
            with np.load(path, allow_pickle=False) as z:
                return z["features"].astype(np.float32), pd.DataFrame(
                    {k[2:]: z[k] for k in z.files if k.startswith("p_")}
                )
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


def fit_head(feats: np.ndarray, y: np.ndarray):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=300, C=0.05)).fit(feats, y)


def build_pools(args, cfg: DriftParams) -> tuple[pd.DataFrame, pd.DataFrame, dict, dict]:
    """(reference, train-row reference, {(kind, sev): pool frame}, info) from cached features."""
    emb = Embedder(args.image_size, Path(args.cache))
    xtr, ytr = load_split("train", args.image_size)
    xte, yte = load_split("t10k", args.image_size)
    n_head, n_clean = args.head_rows, args.clean_pool
    f_head, p_head = emb("head", xtr[:n_head])
    head = fit_head(f_head, ytr[:n_head])
    pca = PCAProjector.fit(f_head, cfg.pca_components)

    def frame(feats: np.ndarray, props: pd.DataFrame) -> pd.DataFrame:
        return monitoring_frame(head.predict_proba(feats), feats, pca, props)

    f_ref, p_ref = emb("reference", xtr[n_head : n_head + cfg.reference_size])
    reference, train_reference = (
        frame(f_ref, p_ref),
        frame(f_head, p_head).iloc[: cfg.reference_size],
    )
    f_clean, p_clean = emb("clean", xte[:n_clean])
    pools = {("clean", 0): frame(f_clean, p_clean)}
    for kind in LABEL_SHIFTS:
        for sev in args.label_severities:
            keep = label_shift(yte[:n_clean], kind, sev, seed=sev, target_class=args.target_class)
            pools[(kind, sev)] = pools[("clean", 0)].iloc[keep].reset_index(drop=True)
    base = xte[n_clean : n_clean + args.shift_pool]
    for kind in args.kinds:
        for sev in args.severities:
            f, p = emb(f"{kind}-{sev}", apply_shift(base, kind, sev, seed=sev))
            pools[(kind, sev)] = frame(f, p)
    acc = float((head.predict(f_clean) == yte[:n_clean]).mean())
    return (
        reference,
        train_reference,
        pools,
        {"clean_accuracy": acc, "provenance": emb.bb.provenance},
    )


def run_cell(
    ref: pd.DataFrame, pool: pd.DataFrame, n: int, trials: int, cfg: DriftParams, seed: int
) -> dict:
    rng = np.random.default_rng(seed)
    cols = feature_columns(ref)
    num = [c for c in cols if c != "pred"]
    xfer = evid = anycol = 0
    for t in range(trials):
        cur = pool.iloc[rng.choice(len(pool), n, replace=False)].reset_index(drop=True)
        trial_cfg = DriftParams(**{**cfg.__dict__, "seed": seed * 1000 + t})  # fresh permutations
        xfer += check_drift(ref, cur, trial_cfg, reference_version="bench", render=False).drift
        dataset, share = preset_verdict(ref, cur, num, ["pred"])
        evid += dataset
        anycol += share > 0
    return {
        "xfer_rate": xfer / trials,
        "evidently_rate": evid / trials,
        "evidently_any_column_rate": anycol / trials,
    }


def summarise(rows: list[dict], sizes: list[int]) -> dict:
    def rate(kind: str, sev: int, n: int, key: str = "xfer_rate") -> float | None:
        hit = [r[key] for r in rows if (r["kind"], r["severity"], r["n"]) == (kind, sev, n)]
        return hit[0] if hit else None

    clean = {
        n: {"xfer": rate("clean", 0, n), "evidently": rate("clean", 0, n, "evidently_rate")}
        for n in sizes
    }
    det = {
        k: {"xfer": rate(k, 3, 500), "evidently": rate(k, 3, 500, "evidently_rate")}
        for k in TARGET_KINDS
    }
    ko = {
        "xfer": rate("knockout", 5, 1000),
        "evidently": rate("knockout", 5, 1000, "evidently_rate"),
    }
    fa = [v["xfer"] for v in clean.values() if v["xfer"] is not None]
    dv = [v["xfer"] for v in det.values() if v["xfer"] is not None]
    return {
        "false_alarm_by_n": clean,
        "detection_n500_sev3": det,
        "knockout_sev5_n1000": ko,
        "meets_false_alarm_target": bool(fa) and max(fa) <= TARGETS["false_alarm_max"],
        "meets_detection_target": bool(dv) and min(dv) >= TARGETS["detect_min_n500_sev3"],
        "meets_knockout_target": ko["xfer"] is not None
        and ko["xfer"] >= TARGETS["knockout_min_n1000"],
    }


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=100)
    ap.add_argument(
        "--clean-trials",
        type=int,
        default=None,
        help="trials of the clean cells (default: --trials)",
    )
    ap.add_argument("--sizes", default="50,100,200,500,1000")
    ap.add_argument("--severities", default="1,3,5")
    ap.add_argument(
        "--label-severities", default=None, help="label-shift severities (default: --severities)"
    )
    ap.add_argument(
        "--kinds",
        default=",".join(IMAGE_SHIFTS),
        help="image corruptions (label shifts always run)",
    )
    ap.add_argument("--image-size", type=int, default=64)
    ap.add_argument("--head-rows", type=int, default=5000)
    ap.add_argument("--clean-pool", type=int, default=4000)
    ap.add_argument("--shift-pool", type=int, default=1500)
    ap.add_argument(
        "--target-class", type=int, default=0, help="class of the label shifts (0 = T-shirt/top)"
    )
    ap.add_argument("--cache", default="/tmp/xfer-drift-power-cache")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "drift_power.json"))
    args = ap.parse_args()
    args.sizes = [int(s) for s in args.sizes.split(",")]
    args.severities = [int(s) for s in args.severities.split(",")]
    label = args.severities if args.label_severities is None else args.label_severities.split(",")
    args.label_severities = [int(s) for s in label if str(s)]
    args.kinds = [k for k in args.kinds.split(",") if k]
    return args


def main() -> None:
    args = parse_args()
    torch.set_num_threads(2)
    # min_window is lowered so small windows are tested, not reported as insufficient_data.
    cfg = DriftParams(min_window=min(args.sizes))
    t0 = time.perf_counter()
    ref, train_ref, pools, info = build_pools(args, cfg)
    info["features_s"] = time.perf_counter() - t0
    print(
        f"pools ready in {info['features_s']:.0f} s; clean accuracy {info['clean_accuracy']:.3f}",
        flush=True,
    )
    rows: list[dict] = []
    for i, ((kind, sev), pool) in enumerate(
        sorted(pools.items(), key=lambda kv: (kv[0][0] != "clean", kv[0]))
    ):
        trials = args.clean_trials or args.trials if kind == "clean" else args.trials
        for n in args.sizes:
            if n > len(pool):
                continue
            t = time.perf_counter()
            row = {"kind": kind, "severity": sev, "n": n, "trials": trials, "pool": len(pool)}
            row |= run_cell(ref, pool, n, trials, cfg, seed=i * 100 + n)
            rows.append(row | {"seconds": round(time.perf_counter() - t, 1)})
            print(json.dumps(rows[-1]), flush=True)
    trap = {"n": 500, "trials": args.trials} | run_cell(
        train_ref, pools[("clean", 0)], 500, args.trials, cfg, seed=7
    )
    result = {
        "summary": summarise(rows, args.sizes),
        "train_rows_reference_clean_n500": trap,
        "targets": TARGETS,
        "run": {k: v for k, v in vars(args).items()}
        | {"seconds": round(time.perf_counter() - t0, 1)},
        "setup": info
        | {
            "alpha": cfg.alpha,
            "min_window": cfg.min_window,
            "permutations": cfg.permutations,
            "reference_rows": len(ref),
            "pca_components": cfg.pca_components,
            "columns": feature_columns(ref),
        },  # fmt: skip
        "rows": rows,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(json.dumps(result["summary"], indent=2))


if __name__ == "__main__":
    main()
