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
    d = decide_promotion(CandidateMetrics("1", 0.8, 0.8), None, CFG)
    assert d.action == "promote"
    assert d.champion is None and "no champion" in d.reasons[0]


def test_gate_rejects_a_first_version_below_min_accuracy() -> None:
    d = decide_promotion(CandidateMetrics("1", 0.9, 0.42), None, RegistryParams())
    assert d.action == "reject"
    assert "0.4200" in d.reasons[-1] and "min_accuracy 0.5000" in d.reasons[-1]


def test_gate_rejects_any_version_below_min_accuracy_even_if_it_beats_the_champion() -> None:
    weak = CandidateMetrics("1", 0.30, 0.40)
    d = decide_promotion(CandidateMetrics("2", 0.45, 0.45), weak, RegistryParams())
    assert d.action == "reject" and "below the floor" in d.reasons[-1]


def test_first_version_without_new_data_is_judged_on_the_holdout_and_says_so() -> None:
    d = decide_promotion(CandidateMetrics("1", None, 0.8), None, RegistryParams())
    assert d.action == "promote"
    assert any("no separate new data" in r for r in d.reasons)
    assert not any(r.startswith("new data") for r in d.reasons)


def test_retrain_without_new_data_compares_once_on_the_holdout() -> None:
    champ = CandidateMetrics("1", None, 0.80)
    better = decide_promotion(CandidateMetrics("2", None, 0.82), champ, RegistryParams())
    same = decide_promotion(CandidateMetrics("2", None, 0.80), champ, RegistryParams())
    assert better.action == "promote" and same.action == "reject"
    assert len(better.reasons) == 2 and "no separate new data" in better.reasons[0]
    assert better.reasons[1].startswith("holdout: v2 0.8200 vs v1 0.8000")


def test_gate_rejects_a_tie() -> None:
    d = decide_promotion(CandidateMetrics("2", 0.70, 0.90), CHAMP, RegistryParams())
    assert d.action == "reject" and d.reasons[0].endswith("a tie")


def test_default_gate_needs_a_gain_of_one_point() -> None:
    assert RegistryParams().min_improvement == 0.01 and RegistryParams().min_accuracy == 0.5
    cfg = RegistryParams()
    assert decide_promotion(CandidateMetrics("2", 0.705, 0.90), CHAMP, cfg).action == "reject"
    assert decide_promotion(CandidateMetrics("2", 0.71, 0.90), CHAMP, cfg).action == "promote"


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


def test_gate_with_zero_min_improvement_still_rejects_a_tie_and_a_loss() -> None:
    cfg = RegistryParams(min_improvement=0.0, max_forgetting=0.0)
    assert decide_promotion(CandidateMetrics("2", 0.70, 0.90), CHAMP, cfg).action == "reject"
    assert decide_promotion(CandidateMetrics("2", 0.69, 0.90), CHAMP, cfg).action == "reject"
    assert decide_promotion(CandidateMetrics("2", 0.701, 0.90), CHAMP, cfg).action == "promote"


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_gate_rejects_non_finite_metrics_even_without_a_champion(bad: float) -> None:
    assert decide_promotion(CandidateMetrics("2", bad, 0.9), None, CFG).action == "reject"


def test_decision_serialises_to_json_with_both_versions() -> None:
    d = decide_promotion(CandidateMetrics("2", 0.80, 0.90), CHAMP, CFG)
    out = json.loads(json.dumps(d.to_dict()))
    assert out["action"] == "promote"
    assert out["challenger"]["version"] == "2" and out["champion"]["version"] == "1"
    assert out["max_forgetting"] == 0.01 and out["min_accuracy"] == 0.5


def test_importing_the_gate_does_not_import_mlflow() -> None:
    import subprocess

    code = "import sys, xferlib.registry; print('mlflow' in sys.modules, 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_decision_markdown_shows_the_verdict_both_versions_metrics_and_every_reason() -> None:
    from xferlib.registry.promotion import decision_markdown

    forgets = decide_promotion(CandidateMetrics("2", 0.80, 0.85), CHAMP, CFG)
    md = decision_markdown(forgets, "", "abc123")
    assert md.startswith("**Rejected**: the champion v1 stays.") and "`abc123`" in md
    assert "| primary metric | challenger v2 | champion v1 |" in md
    assert (
        "| new labelled data | 0.8000 | 0.7000 |" in md and "| ID holdout | 0.8500 | 0.9000 |" in md
    )
    assert all(f"- {r}" in md for r in forgets.reasons) and "too much" in md
    first = decision_markdown(
        decide_promotion(CandidateMetrics("1", None, 0.8), None, CFG), "", "x"
    )
    assert first.startswith("**Promoted** to champion.") and "champion (none)" in first
    assert "| new labelled data | - | - |" in first
