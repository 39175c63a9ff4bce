"""False alarms of the drift verdict on clean windows: at most alpha at n = 50, 100 and min_window.

Each case draws WINDOWS clean windows of synthetic monitoring rows (pred, max_softmax, 16 PCA-like
embedding columns, six image properties with width/height tied on three camera sizes), each
against a fresh reference of 200 rows, so the windows are independent and the alarm count is binomial. The
case passes when alarms <= BOUND = binom.ppf(1 - FLAKE, WINDOWS, alpha). With 1,000 windows and
alpha = 0.05 the bound is 73 (7.3 %), and:
- a verdict whose true rate is alpha fails the bound with probability <= FLAKE = 0.1 %;
- a verdict whose true rate is 2 x alpha = 10 % passes it with probability 0.18 %
  (`test_the_bound_tells_alpha_from_twice_alpha` recomputes both).
Seeds are fixed, so a run is deterministic; the rates above say how unlucky a seed could be.
The slow suite repeats the claim on real features (Fashion-MNIST through EfficientNet-Lite0).
Each window takes ~10 ms on an idle 2-core machine (the MMD kernel and 100 permutations).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from tests.drift.synthetic import window
from xferlib.config import DriftParams
from xferlib.drift import run_tests

WINDOWS = 1000
FLAKE = 1e-3
# B = 99 reaches alpha/F = 0.0125 (1/(B+1) = 0.01), the smallest B the params allow is 79
CFG = DriftParams(alpha=0.05, min_window=200, permutations=99)
SIZES = (28, 32, 64)


def bound(windows: int, rate: float) -> int:
    """Largest alarm count consistent with a true rate <= `rate` (one-sided, level FLAKE)."""
    return int(stats.binom.ppf(1.0 - FLAKE, windows, rate))


Draw = Callable[[int, np.random.Generator], pd.DataFrame]


def clean_p_values(n: int, reference_size: int, draw: Draw, seed: int) -> pd.DataFrame:
    """One row per clean window (`draw(rows, rng)` gives iid rows): p-values and the verdict."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(WINDOWS):
        both = draw(reference_size + n, rng)
        ref, cur = both.iloc[:reference_size], both.iloc[reference_size:].reset_index(drop=True)
        cfg = DriftParams(**{**CFG.__dict__, "seed": seed * WINDOWS + i})
        tests = run_tests(ref, cur, cfg)
        rows.append({name: t.p_value for name, t in tests.items()})
        rows[-1]["alarm"] = any(t.drift for t in tests.values())
    return pd.DataFrame(rows)


def assert_at_most_alpha(p: pd.DataFrame, what: str) -> None:
    """The verdict's rate <= alpha, and each test's own p-value is not small too often."""
    alarms, limit = int(p.pop("alarm").sum()), bound(WINDOWS, CFG.alpha)
    assert alarms <= limit, (
        f"{alarms} false alarms in {WINDOWS} clean windows of {what} (alpha {CFG.alpha}, bound {limit})"
    )
    # each test alone at level alpha: a test anti-conservative at small n shows up here first
    loud = {name: int((p[name] <= CFG.alpha).sum()) for name in p.columns}
    assert max(loud.values()) <= limit, f"p <= alpha too often on {what}: {loud}"


def synthetic(rows: int, rng: np.random.Generator) -> pd.DataFrame:
    return window(rows, rng, sizes=SIZES)


def test_the_bound_tells_alpha_from_twice_alpha() -> None:
    b = bound(WINDOWS, CFG.alpha)
    assert stats.binom.sf(b, WINDOWS, CFG.alpha) <= FLAKE  # a valid verdict fails <= 0.1 %
    assert stats.binom.cdf(b, WINDOWS, 2 * CFG.alpha) < 0.01  # 2 x alpha passes < 1 %


@pytest.mark.parametrize(
    ("n", "reference_size"),
    [
        (50, 200),
        (100, 200),
        (CFG.min_window, 200),
        pytest.param(50, 2000, marks=pytest.mark.slow, id="n50-reference2000"),
    ],
    ids=["n50", "n100", "min_window", "n50-reference2000"],
)
def test_clean_synthetic_windows_alarm_at_most_alpha(n: int, reference_size: int) -> None:
    p = clean_p_values(n, reference_size, synthetic, seed=n + reference_size)
    assert_at_most_alpha(p, f"{n} synthetic rows against {reference_size}")


@pytest.fixture(scope="module")
def fashion_rows() -> pd.DataFrame:
    """4,000 real monitoring rows: Fashion-MNIST at 32 px through EfficientNet-Lite0 (~1 min)."""
    from tests.drift.real_rows import real_rows

    return real_rows(4000, head_rows=1000, image_size=32)


@pytest.mark.slow
@pytest.mark.parametrize("n", [50, 100, CFG.min_window])
def test_clean_fashion_mnist_windows_alarm_at_most_alpha(
    fashion_rows: pd.DataFrame, n: int
) -> None:
    """The same claim on real features: reference (300) and window drawn disjoint from 4,000
    Fashion-MNIST rows scored by a pretrained backbone; ~3-5 min for the three sizes."""

    def draw(rows: int, rng: np.random.Generator) -> pd.DataFrame:
        return fashion_rows.iloc[rng.choice(len(fashion_rows), rows, replace=False)]

    p = clean_p_values(n, 300, draw, seed=10 * n)
    assert_at_most_alpha(p, f"{n} Fashion-MNIST rows against 300")
