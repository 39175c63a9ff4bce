"""The promotion gate's truth table: pure, no MLflow, milliseconds."""

from __future__ import annotations

import json
import math
import sys

import pytest

from xferlib.config import RegistryParams
from xferlib.registry import CandidateMetrics, decide_promotion

CFG = RegistryParams(min_improvement=0.02, max_forgetting=0.01)
CHAMP = CandidateMetrics("1", new_metric=0.70, holdout_metric=0.90)


def test_gate_promotes_the_first_version_when_there_is_no_champion() -> None:
    d = decide_promotion(CandidateMetrics("1", 0.1, 0.1), None, CFG)
    assert d.action == "promote"
    assert d.champion is None and "no champion" in d.reasons[0]


def test_gate_promotes_a_challenger_better_on_new_data_that_keeps_the_holdout() -> None:
    d = decide_promotion(CandidateMetrics("2", 0.80, 0.895), CHAMP, CFG)
    assert d.action == "promote"
    assert all(r.endswith("ok") for r in d.reasons)


def test_gate_rejects_a_challenger_worse_on_new_data() -> None:
    d = decide_promotion(CandidateMetrics("2", 0.60, 0.95), CHAMP, CFG)
    assert d.action == "reject"
    assert "too small" in d.reasons[0] and d.reasons[1].endswith("ok")


def test_gate_rejects_challenger_that_forgets_the_old_holdout() -> None:
    d = decide_promotion(CandidateMetrics("2", 0.95, 0.85), CHAMP, CFG)
    assert d.action == "reject"
    assert d.reasons[0].endswith("ok") and "too much" in d.reasons[1]
    assert "0.8500" in d.reasons[1] and "0.9000" in d.reasons[1]  # reasons name the numbers


def test_gate_rejects_a_gain_within_min_improvement() -> None:
    d = decide_promotion(CandidateMetrics("2", 0.71, 0.90), CHAMP, CFG)
    assert d.action == "reject"
    assert "+0.0100" in d.reasons[0] and "+0.0200" in d.reasons[0]


def test_gate_boundaries_are_inclusive_despite_float_noise() -> None:
    # 0.70 + 0.02 is 0.7199999999999999 in binary; exactly min_improvement and max_forgetting pass
    d = decide_promotion(CandidateMetrics("2", 0.72, 0.89), CHAMP, CFG)
    assert d.action == "promote"


def test_gate_with_zero_min_improvement_promotes_a_tie_but_not_a_loss() -> None:
    cfg = RegistryParams(min_improvement=0.0, max_forgetting=0.0)
    assert decide_promotion(CandidateMetrics("2", 0.70, 0.90), CHAMP, cfg).action == "promote"
    assert decide_promotion(CandidateMetrics("2", 0.70, 0.8999), CHAMP, cfg).action == "reject"


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_gate_rejects_non_finite_metrics_even_without_a_champion(bad: float) -> None:
    assert decide_promotion(CandidateMetrics("2", bad, 0.9), None, CFG).action == "reject"


def test_decision_serialises_to_json_with_both_versions() -> None:
    d = decide_promotion(CandidateMetrics("2", 0.80, 0.90), CHAMP, CFG)
    out = json.loads(json.dumps(d.to_dict()))
    assert out["action"] == "promote"
    assert out["challenger"]["version"] == "2" and out["champion"]["version"] == "1"
    assert out["max_forgetting"] == 0.01


def test_importing_the_gate_does_not_import_mlflow() -> None:
    import subprocess

    code = "import sys, xferlib.registry; print('mlflow' in sys.modules, 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
