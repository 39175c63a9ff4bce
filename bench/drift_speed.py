"""Speed of xfer's drift verdict vs Evidently's DataDriftPreset on the same 64 columns.

Columns: pred (categorical), max_softmax, emb_0..emb_55, six image properties = 64. Reference:
2000 rows (the default `drift.reference_size`); current window: 1k .. 100k rows. xfer's time is
`check_drift(..., render=False)` (the verdict: MMD permutation test + chi2 + KS); Evidently's is
a full `Report([DataDriftPreset()]).run(...)` (what a dashboard would run), import excluded.

    .venv/bin/python bench/drift_speed.py            # ~2-4 min on 2 shared cores
Writes bench/results/drift_speed.json; "ratio" = Evidently time / xfer time at 100k rows.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import pandas as pd

from xferlib.config import DriftParams
from xferlib.drift import check_drift, feature_columns

N_EMB = 56


def synthetic(n: int, rng: np.random.Generator) -> pd.DataFrame:
    """Rows shaped like real monitoring rows: 64 feature columns."""
    logits = rng.normal(size=(n, 10))
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    cols: dict[str, np.ndarray] = {"pred": probs.argmax(1), "max_softmax": probs.max(1)}
    emb = rng.normal(size=(n, N_EMB)).astype(np.float32) * np.linspace(
        3, 0.3, N_EMB, dtype=np.float32
    )
    cols.update({f"emb_{i}": emb[:, i] for i in range(N_EMB)})
    cols.update(
        brightness=rng.beta(2, 5, n),
        contrast=rng.gamma(4, 0.05, n),
        sharpness=rng.lognormal(5, 1, n),
        width=rng.choice([28, 32, 64], n),
        height=rng.choice([28, 32, 64], n),
    )
    cols["aspect"] = cols["width"] / cols["height"]
    return pd.DataFrame(cols)


def time_xfer(ref: pd.DataFrame, cur: pd.DataFrame, cfg: DriftParams, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        check_drift(ref, cur, cfg, reference_version="bench", render=False)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def time_evidently(ref: pd.DataFrame, cur: pd.DataFrame) -> float:
    from xferlib.drift.evidently_adapter import run_preset

    num = [c for c in feature_columns(ref) if c != "pred"]
    t = time.perf_counter()
    run_preset(ref, cur, num, ["pred"])
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000,3000,10000,30000,100000")
    ap.add_argument("--repeats", type=int, default=3, help="xfer timings per size (median)")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "drift_speed.json"))
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    cfg = DriftParams()
    ref = synthetic(cfg.reference_size, rng)
    t = time.perf_counter()
    import evidently  # noqa: F401  (import cost reported separately, not in the per-run times)

    import_s = time.perf_counter() - t
    rows = []
    for n in (int(s) for s in args.sizes.split(",")):
        cur = synthetic(n, rng)
        x = time_xfer(ref, cur, cfg, args.repeats)
        e = time_evidently(ref, cur)
        rows.append(
            {
                "rows": n,
                "columns": len(feature_columns(cur)),
                "xfer_s": x,
                "evidently_s": e,
                "ratio": e / x,
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    top = rows[-1]
    result = {
        "ratio": top["ratio"],
        "at_rows": top["rows"],
        "xfer_s_at_max": top["xfer_s"],
        "evidently_s_at_max": top["evidently_s"],
        "targets": {"xfer_s_at_100k_max": 3.0, "ratio_min": 10.0},
        "evidently_import_s": import_s,
        "reference_rows": len(ref),
        "params": {
            "permutations": cfg.permutations,
            "alpha": cfg.alpha,
            "xfer_repeats": args.repeats,
        },
        "machine": {"cpus": __import__("os").cpu_count(), "python": platform.python_version()},
        "rows": rows,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"ratio {result['ratio']:.1f}x at {top['rows']} rows: xfer {top['xfer_s']:.2f} s, evidently {top['evidently_s']:.1f} s"
    )


if __name__ == "__main__":
    main()
