"""From drift verdicts to retrain requests: one in flight at a time, coalescing, a stale marker
that expires, and the in-flight marker released when the retrain reports back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from xferlib.alerts import read_alerts
from xferlib.drift import DriftReport
from xferlib.stages import trigger
from xferlib.stages.results import DriftResult


def _report(report_id: str, drift: bool = True) -> DriftResult:
    report = DriftReport(
        drift=drift, status="drift" if drift else "no_drift", report_id=report_id,
        window_size=500, reference_size=1000, reference_version="1",
        tests={}, drifted_columns=["embeddings"] if drift else [],
    )  # fmt: skip
    return DriftResult(report, window_id=f"w-{report_id}")


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
    trigger.retrain_finished(tmp_path, "r1", "run-1", version="2", action="promote")
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
    trigger.retrain_failed(tmp_path, "r1", "run-1", "boom")
    again = trigger.decide(tmp_path, _report("r1"), now + timedelta(minutes=1))
    assert not again.retrain and "coalesced" in again.reason
    assert [a["kind"] for a in read_alerts(tmp_path / "alerts.jsonl")].count("drift_detected") == 1


def _cooldown(tmp_path: Path, minutes: float = 30.0) -> Path:
    tmp_path.mkdir(exist_ok=True)
    (tmp_path / "params.yaml").write_text(f"drift:\n  cooldown_minutes: {minutes}\n")
    return tmp_path


def test_a_failed_retrain_restarts_no_cooldown_so_the_next_drift_may_retrain(
    tmp_path: Path,
) -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    failed, finished = _cooldown(tmp_path / "a"), _cooldown(tmp_path / "b")
    for wd in (failed, finished):
        assert trigger.decide(wd, _report("r1"), now).retrain
    trigger.retrain_failed(failed, "r1", "", "RuntimeError: CUDA out of memory")
    trigger.retrain_finished(finished, "r1", "", version="2", action="promote")
    later = now + timedelta(minutes=1)
    assert trigger.decide(failed, _report("r2"), later).retrain
    blocked = trigger.decide(finished, _report("r2"), later)
    assert not blocked.retrain and "cool-down" in blocked.reason
    (alert,) = [a for a in read_alerts(failed / "alerts.jsonl") if a["kind"] == "retrain_failed"]
    assert "CUDA out of memory" in alert["message"]


def test_a_manual_claim_is_refused_while_one_is_in_flight_unless_forced(tmp_path: Path) -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert trigger.decide(tmp_path, _report("r1"), now).retrain
    with pytest.raises(trigger.RetrainInFlight, match="for r1 is in flight.*--force"):
        trigger.claim(tmp_path, "manual-1", manual=True, now=now)
    trigger.claim(tmp_path, "r1", now=now)  # the drift retrain itself: its own marker, no-op
    trigger.claim(tmp_path, "manual-1", manual=True, force=True, now=now)
    assert trigger.in_flight(tmp_path, now) == "manual-1"
    trigger.retrain_finished(tmp_path, "r1", "", version="2", action="reject")
    assert trigger.in_flight(tmp_path, now) == "manual-1"  # r1 reporting back does not free it
    trigger.release(tmp_path, "manual-1")
    assert trigger.in_flight(tmp_path, now) is None


def test_a_manual_retrain_ignores_the_cooldown_and_restarts_it(tmp_path: Path) -> None:
    wd, now = _cooldown(tmp_path), datetime(2026, 1, 1, tzinfo=UTC)
    assert trigger.decide(wd, _report("r1"), now).retrain
    trigger.retrain_finished(wd, "r1", "", version="2", action="promote")
    trigger.claim(wd, "manual-1", manual=True, now=now + timedelta(minutes=20))
    trigger.retrain_finished(wd, "manual-1", "", version="3", action="promote")
    blocked = trigger.decide(wd, _report("r2"), now + timedelta(minutes=40))  # 20 min after it
    assert not blocked.retrain and "cool-down" in blocked.reason
    assert trigger.decide(wd, _report("r3"), now + timedelta(minutes=51)).retrain
