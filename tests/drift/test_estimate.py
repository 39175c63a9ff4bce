"""The label-free accuracy estimate (ATC, with AC and DoC): its threshold, its accuracy on windows
whose truth is known, the coverage of its interval, and its round trips."""

from __future__ import annotations

import numpy as np
import pytest

from xferlib.drift import AccuracyEstimate, AccuracyModel, DriftReport

CUT = 0.6  # the model is right exactly on images it scores above this: ATC's ideal case


def _scores(rng: np.random.Generator, n: int, a: float, b: float) -> tuple[np.ndarray, np.ndarray]:
    """Max-softmax scores ~ 0.1 + 0.9 Beta(a, b), right exactly above CUT; a shift changes (a, b)."""
    conf = 0.1 + 0.9 * rng.beta(a, b, n)
    return conf, conf > CUT


def _truth(a: float, b: float) -> float:
    from scipy.stats import beta

    return float(beta.sf((CUT - 0.1) / 0.9, a, b))


def test_the_threshold_leaves_the_reference_accuracy_above_it() -> None:
    rng = np.random.default_rng(0)
    for n in (10, 101, 2000):
        conf = rng.random(n)
        correct = rng.random(n) < conf  # any mix of right and wrong
        fit = AccuracyModel.fit(conf, correct)
        assert abs((conf > fit.threshold).mean() - correct.mean()) <= 1 / n
    two = np.array([0.9, 0.8])
    assert (two > AccuracyModel.fit(two, np.array([True, True])).threshold).all()
    assert not (two > AccuracyModel.fit(two, np.array([False, False])).threshold).any()


def test_atc_recovers_the_accuracy_of_shifted_windows_where_ac_does_not() -> None:
    """Windows whose scores shift (harder and harder images): ATC, fit once on the reference, stays
    within 3 points of the truth; AC (mean confidence) misses by more; DoC moves with AC."""
    rng = np.random.default_rng(1)
    fit = AccuracyModel.fit(*_scores(rng, 2000, 5, 2))
    atc_err, ac_err = [], []
    for a, b in [(5, 2), (3, 2), (2, 2), (1.5, 3)]:
        conf, ok = _scores(rng, 2000, a, b)
        est = fit.estimate(conf)
        atc_err.append(abs(est.accuracy - ok.mean()))
        ac_err.append(abs(est.average_confidence - ok.mean()))
        assert est.doc == pytest.approx(fit.accuracy + est.average_confidence - fit.confidence)
    assert max(atc_err) < 0.03, atc_err
    assert np.mean(atc_err) < np.mean(ac_err), (atc_err, ac_err)


def test_the_interval_covers_the_truth_at_about_its_level() -> None:
    """95 % intervals over 200 independent (reference, window) draws: coverage below 88 % (binomial
    one-sided p < 0.001 if it were 95 %) means an interval too narrow; 100 % with a mean width over
    0.2 would mean one too wide to use."""
    rng = np.random.default_rng(2)
    covered, widths, trials = 0, [], 200
    truth = _truth(2, 2)
    for t in range(trials):
        fit = AccuracyModel.fit(*_scores(rng, 1000, 5, 2))
        est = fit.estimate(_scores(rng, 300, 2, 2)[0], seed=t)
        covered += est.low <= truth <= est.high
        widths.append(est.high - est.low)
    assert covered / trials >= 0.88, covered
    assert np.mean(widths) < 0.2, np.mean(widths)


def test_round_trips_and_clear_errors(tmp_path) -> None:
    rng = np.random.default_rng(3)
    fit = AccuracyModel.fit(*_scores(rng, 50, 5, 2))
    fit.save(tmp_path)
    assert AccuracyModel.load(tmp_path) == fit
    assert AccuracyModel.load(tmp_path / "nothing") is None
    est = fit.estimate(rng.random(40))
    assert AccuracyEstimate.from_dict(est.to_dict()) == est
    report = DriftReport(True, "drift", 40, 50, "3", {}, [], accuracy=est)
    assert DriftReport.from_dict(report.to_dict()) == report
    with pytest.raises(ValueError, match="non-empty"):
        fit.estimate(np.array([]))
    with pytest.raises(ValueError, match="one score and one correct flag"):
        AccuracyModel.fit(np.array([0.5, 0.6]), np.array([True]))
