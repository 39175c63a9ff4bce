"""From drift verdicts to retrain requests: one in flight at a time, coalescing, a stale marker
that expires, and the in-flight marker released when the retrain reports back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from xferlib.alerts import read_alerts
from xferlib.drift import DriftReport
from xferlib.registry import CandidateMetrics, PromotionDecision
from xferlib.stages import trigger
from xferlib.stages.results import DriftResult, GateResult


def _report(report_id: str, drift: bool = True) -> DriftResult:
    report = DriftReport(
        drift=drift, status="drift" if drift else "no_drift", report_id=report_id,
        window_size=500, reference_size=1000, reference_version="1",
        tests={}, drifted_columns=["embeddings"] if drift else [],
    )  # fmt: skip
    return DriftResult(report, window_id=f"w-{report_id}")


def _gate(version: str, action: str) -> GateResult:
    challenger = CandidateMetrics(version, 0.9, 0.9)
    decision = PromotionDecision(action, ["because"], challenger, None, 0.01, 0.02)  # type: ignore[arg-type]
    return GateResult("m", version, "run", decision, {"holdout": 0.9}, None, "ref")


def test_second_drift_is_coalesced_while_a_retrain_is_in_flight(tmp_path: Path) -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert trigger.decide(tmp_path, _report("r1"), now).retrain
    second = trigger.decide(tmp_path, _report("r2"), now + timedelta(minutes=5))
    assert not second.retrain and "in flight" in second.reason
    kinds = [a["kind"] for a in read_alerts(tmp_path / "alerts.jsonl")]
    assert kinds == ["drift_detected", "drift_detected"]


def test_finished_retrain_releases_the_marker(tmp_path: Path) -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert trigger.decide(tmp_path, _report("r1"), now).retrain
    trigger.retrain_finished(tmp_path, "r1", "run-1", result=_gate("2", "promote"))
    assert trigger.decide(tmp_path, _report("r2"), now + timedelta(minutes=1)).retrain
    (done,) = [a for a in read_alerts(tmp_path / "alerts.jsonl") if a["kind"] == "retrain_finished"]
    assert done["model_version"] == "2" and done["message"].endswith("v2 promote")


def test_a_retrain_that_never_reported_back_stops_blocking_after_the_timeout(
    tmp_path: Path,
) -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert trigger.decide(tmp_path, _report("r1"), now).retrain
    later = now + trigger.IN_FLIGHT_TIMEOUT + timedelta(minutes=1)
    assert trigger.decide(tmp_path, _report("r2"), later).retrain


def test_the_same_report_twice_is_counted_once(tmp_path: Path) -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    trigger.decide(tmp_path, _report("r1"), now)
    trigger.retrain_finished(tmp_path, "r1", "run-1", error="boom")
    again = trigger.decide(tmp_path, _report("r1"), now + timedelta(minutes=1))
    assert not again.retrain and "coalesced" in again.reason
    assert [a["kind"] for a in read_alerts(tmp_path / "alerts.jsonl")].count("drift_detected") == 1
