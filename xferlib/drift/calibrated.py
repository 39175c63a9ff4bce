"""The calibrated tests of one window (`run_tests`) and their result (`TestResult`).

Apart from `check.py` so that the Evidently metrics (`evidently_verdict.py`), which `check_drift`
runs when Evidently is on, call the very same function without an import cycle. See `check.py`
for the tests and how alpha is split between them.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from xferlib.config import MAX_TEST_FAMILIES, DriftParams
from xferlib.drift.features import PROPERTY_COLUMNS
from xferlib.drift.stats import chi2_test, ks_test, mmd_test


@dataclass(frozen=True)
class TestResult:
    statistic: float
    p_value: float
    threshold: float  # reject (drift) when p_value <= threshold
    drift: bool


def run_tests(
    reference: pd.DataFrame, current: pd.DataFrame, cfg: DriftParams
) -> dict[str, TestResult]:
    """All calibrated tests on already-validated feature columns, thresholds summing to alpha."""
    embs = [c for c in reference.columns if c.startswith("emb_")]
    props = [c for c in PROPERTY_COLUMNS if c in reference.columns]
    raw: dict[str, tuple[float, float, float]] = {}  # name -> (statistic, p, share of alpha)
    families = sum(bool(f) for f in (embs, ["pred"], ["max_softmax"], props))
    assert families <= MAX_TEST_FAMILIES  # DriftParams.check sizes B for this many
    if embs:
        stat, p = mmd_test(
            reference[embs].to_numpy(), current[embs].to_numpy(), cfg.permutations, cfg.seed
        )
        raw["embedding_mmd"] = (stat, p, 1.0 / families)
    stat, p = chi2_test(
        reference["pred"].to_numpy(), current["pred"].to_numpy(), cfg.permutations, cfg.seed
    )
    raw["pred_chi2"] = (stat, p, 1.0 / families)
    numeric = ["max_softmax", *props]
    ks_stats, ks_ps = ks_test(reference[numeric].to_numpy(), current[numeric].to_numpy())
    shares = [1.0 / families] + [1.0 / (families * len(props))] * len(props)
    for col, stat, p, share in zip(numeric, ks_stats, ks_ps, shares, strict=True):
        raw[f"{col}_ks"] = (float(stat), float(p), share)
    return {
        name: TestResult(stat, p, cfg.alpha * share, bool(p <= cfg.alpha * share))
        for name, (stat, p, share) in raw.items()
    }
