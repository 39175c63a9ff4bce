"""Speed of xfer's drift verdict vs Evidently's DataDriftPreset, both on the same rows and columns.

What is measured, at each size in the table (none left out):
- "evidently": `Report([DataDriftPreset(drift_share=0.5)]).run(...)` through xfer's adapter
  (`run_preset`) on *every* row of the window and the reference and *every* feature column
  (`pred` categorical, the rest numerical); import excluded (`evidently_import_s`).
- "xfer": `check_drift(..., render=False)`, the production verdict (every calibrated test of
  `run_tests`: MMD permutation test on the embedding, the `pred` and per-column tests) with its
  MMD subsample: at most `xferlib.drift.stats.MAX_MMD_ROWS` rows per side enter the kernel.
- "xfer_full_mmd": the same call with the MMD on every row (equal work with Evidently).
  `check_drift` has no hook for the cap, so the bench swaps `xferlib.drift.check.mmd_test` for
  `mmd_test(..., max_rows=<window size>)` during the call; nothing else changes. The kernel is
  (n + m)^2 float32, so a size whose kernel exceeds --mmd-memory-gb is not run that way and the
  row says so (`full_mmd_skipped`, with the memory it would need). At the default 2 GB that
  leaves 500 and 5,000 rows; 50,000 (10.8 GB) and 100,000 (41.6 GB) do not fit a 24 GiB box
  shared with other jobs.
Sizes: 500, 5,000 and 50,000 rows of the production column set (what `xferlib.drift.features`
produces: pred, max_softmax, emb_0..emb_{k-1} at the default `drift.pca_components`, the six
image properties) and 100,000 rows x 64 columns (56 embedding columns). The reference is
`drift.reference_size` (2,000) rows of the same columns. Rows are synthetic, shaped like real ones
(the cost follows the sizes, not the values); a fresh window per size, the same window for every run.
Method: one warm-up round of every run at the first size (first-call costs; at 100k rows a
warm-up round would cost ~40 s), then per size --pairs rounds of all runs, in listed order then
reversed (`common.interleaved_rounds`); each ratio = Evidently seconds / xfer seconds per round,
median with min and max.

    .venv/bin/python bench/drift_speed.py                              # ~5 min on an idle 2-core box
    .venv/bin/python bench/drift_speed.py --quick --out /tmp/drift_speed.json   # smoke, ~1 min
                                          # (3.5 min at load average 10)

--quick times 500 rows of each column set only. Most of the default run is Evidently at 50k and
100k rows (~20-30 s a call, 5 calls each); nothing is trimmed but the per-size warm-up.
Writes bench/results/drift_speed.json.
"""

from __future__ import annotations

import argparse
import time
from contextlib import nullcontext
from functools import partial
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import pandas as pd
from common import (
    interleaved_rounds,
    machine,
    pair_up,
    quiet_env,
    sampling_load,
    spread,
    start,
    write_result,
)

import xferlib.drift.check as check_module
from xferlib.config import DriftParams
from xferlib.drift import check_drift, feature_columns
from xferlib.drift.features import PROPERTY_COLUMNS, emb_columns
from xferlib.drift.stats import MAX_MMD_ROWS, mmd_test

WIDE_EMB = 56  # 2 model columns + 56 embedding + 6 properties = 64 columns
SIZES = [(500, "production"), (5_000, "production"), (50_000, "production"), (100_000, "wide")]
QUICK_SIZES = [(500, "production"), (500, "wide")]
RUNS = ("evidently", "xfer", "xfer_full_mmd")


def synthetic(n: int, n_emb: int, rng: np.random.Generator) -> pd.DataFrame:
    """`n` monitoring rows with the columns `xferlib.drift.features` produces (values synthetic)."""
    logits = rng.normal(size=(n, 10))
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    cols: dict[str, np.ndarray] = {"pred": probs.argmax(1), "max_softmax": probs.max(1)}
    scale = np.linspace(3, 0.3, n_emb, dtype=np.float32)  # PCA: falling variance
    emb = rng.normal(size=(n, n_emb)).astype(np.float32) * scale
    cols |= {name: emb[:, i] for i, name in enumerate(emb_columns(n_emb))}
    cols |= {
        "brightness": rng.beta(2, 5, n),
        "contrast": rng.gamma(4, 0.05, n),
        "sharpness": rng.lognormal(5, 1, n),
        "width": rng.choice([28, 32, 64], n),
        "height": rng.choice([28, 32, 64], n),
    }
    cols["aspect"] = cols["width"] / cols["height"]
    return pd.DataFrame(cols)[["pred", "max_softmax", *emb_columns(n_emb), *PROPERTY_COLUMNS]]


def kernel_gb(ref_rows: int, cur_rows: int) -> float:
    """Memory of the un-subsampled MMD kernel: (n + m)^2 float32."""
    return 4 * (ref_rows + cur_rows) ** 2 / 1e9


def runs_for(
    ref: pd.DataFrame, cur: pd.DataFrame, cfg: DriftParams, full_mmd: bool
) -> dict[str, Any]:
    """The timed callables for one size (each returns its wall seconds)."""
    from xferlib.drift.evidently_adapter import run_preset

    cols = feature_columns(cur)
    num = [c for c in cols if c != "pred"]

    def evidently() -> float:
        t = time.perf_counter()
        run_preset(ref, cur, num, ["pred"])
        return time.perf_counter() - t

    def xfer(max_rows: int | None = None) -> float:
        full = partial(mmd_test, max_rows=max_rows)
        with mock.patch.object(check_module, "mmd_test", full) if max_rows else nullcontext():
            t = time.perf_counter()
            check_drift(ref, cur, cfg, reference_version="bench", render=False)
            return time.perf_counter() - t

    runs = {"evidently": evidently, "xfer": xfer}
    if full_mmd:
        runs["xfer_full_mmd"] = partial(xfer, max(len(ref), len(cur)))
    return runs


def measure_size(
    n: int,
    column_set: str,
    ref_by_set: dict[str, pd.DataFrame],
    cfg: DriftParams,
    args: Any,
    warmup: int,
) -> dict[str, Any]:
    ref = ref_by_set[column_set]
    n_emb = sum(c.startswith("emb_") for c in ref.columns)
    cur = synthetic(n, n_emb, np.random.default_rng(n))
    gb = kernel_gb(len(ref), n)
    full = gb <= args.mmd_memory_gb
    secs = interleaved_rounds(runs_for(ref, cur, cfg, full), args.pairs, warmup)
    row: dict[str, Any] = {
        "rows": n,
        "columns": len(feature_columns(cur)),
        "column_set": column_set,
        "reference_rows": len(ref),
        "mmd_rows_per_side": {"xfer": [min(len(ref), MAX_MMD_ROWS), min(n, MAX_MMD_ROWS)]},
        "seconds": {k: spread(v) for k, v in secs.items()},
        "evidently_over_xfer": pair_up(secs, "evidently", "xfer"),
    }
    if full:
        row["mmd_rows_per_side"]["xfer_full_mmd"] = [len(ref), n]
        row["evidently_over_xfer_full_mmd"] = pair_up(secs, "evidently", "xfer_full_mmd")
    else:
        row["full_mmd_skipped"] = {
            "kernel_gb": round(gb, 2),
            "limit_gb": args.mmd_memory_gb,
            "reason": "the un-subsampled kernel does not fit the memory limit on this shared box",
        }
    return row


def main() -> None:
    start()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=5, help="interleaved rounds per size (>= 5)")
    ap.add_argument("--mmd-memory-gb", type=float, default=2.0, help="cap for the full-MMD kernel")
    ap.add_argument(
        "--quick", action="store_true", help="smoke run: 500 rows of each column set only"
    )
    ap.add_argument("--out", type=Path, default=None, help="write here, not bench/results/")
    args = ap.parse_args()
    quiet_env()
    cfg = DriftParams()
    rng = np.random.default_rng(0)
    refs = {
        "production": synthetic(cfg.reference_size, cfg.pca_components, rng),
        "wide": synthetic(cfg.reference_size, WIDE_EMB, rng),
    }
    t = time.perf_counter()
    import evidently  # noqa: F401  (import cost reported apart, never inside a timed call)

    import_s = time.perf_counter() - t
    rows = []
    with sampling_load() as load:
        for i, (n, column_set) in enumerate(QUICK_SIZES if args.quick else SIZES):
            rows.append(measure_size(n, column_set, refs, cfg, args, warmup=int(i == 0)))
            r = rows[-1]["evidently_over_xfer"]["ratio"]
            print(f"{n} rows: evidently/xfer {r['median']:.1f} ({r['min']:.1f}-{r['max']:.1f})")
    result = {
        "what": "seconds of Evidently's DataDriftPreset / seconds of xfer's check_drift verdict, "
        "both on every row and column of the same window and reference",
        "method": "one warm-up round of every run at the first size (first-call costs), then per "
        "size `pairs` rounds of evidently, xfer, xfer_full_mmd in listed order then reversed; "
        "ratio per round; median, min, max",
        "runs": {
            "evidently": "evidently_adapter.run_preset: Report([DataDriftPreset(drift_share=0.5)], "
            "include_tests=True) on all rows and feature columns (pred categorical)",
            "xfer": f"check_drift(render=False); MMD on at most {MAX_MMD_ROWS} rows per side",
            "xfer_full_mmd": "check_drift(render=False) with the MMD on every row",
        },
        "quick": args.quick,
        "pairs": args.pairs,
        "params": {
            "reference_size": cfg.reference_size,
            "pca_components": cfg.pca_components,
            "permutations": cfg.permutations,
            "alpha": cfg.alpha,
            "mmd_max_rows": MAX_MMD_ROWS,
            "mmd_memory_gb": args.mmd_memory_gb,
        },
        "columns": {k: feature_columns(v) for k, v in refs.items()},
        "evidently_import_s": import_s,
        "rows": rows,
        "load_average_1m": load.summary(),
        "machine": machine(),
    }
    write_result("drift_speed", result, args.out)


if __name__ == "__main__":
    main()
