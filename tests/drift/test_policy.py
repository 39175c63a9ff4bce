import json
from datetime import UTC, datetime, timedelta

import pytest

from xferlib.config import DriftParams
from xferlib.drift import DriftReport, DriftState, should_retrain

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def report(rid: str, status: str = "drift", n: int = 500) -> DriftReport:
    return DriftReport(
        status == "drift",
        status,
        n,
        2000,
        "m/v1",
        {},
        ["pred"] if status == "drift" else [],
        report_id=rid,
    )  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("cfg", "state", "rep", "retrain", "streak", "reason"),
    [
        (DriftParams(), DriftState(), report("a"), True, 0, "drift in 1"),
        (DriftParams(), DriftState(streak=0), report("a", "no_drift"), False, 0, "no drift"),
        (DriftParams(), DriftState(), report("a", "insufficient_data", 50), False, 0, "min_window"),
        (DriftParams(min_window=600), DriftState(), report("a", n=500), False, 0, "min_window"),
        (DriftParams(consecutive_windows=2), DriftState(), report("a"), False, 1, "1 of 2"),
        (
            DriftParams(consecutive_windows=2),
            DriftState(streak=1, last_report_id="a"),
            report("b"),
            True,
            0,
            "2 consecutive",
        ),
        (
            DriftParams(consecutive_windows=2),
            DriftState(streak=1),
            report("b", "no_drift"),
            False,
            0,
            "reset",
        ),
        (
            DriftParams(consecutive_windows=2),
            DriftState(streak=1),
            report("b", "insufficient_data", 10),
            False,
            1,
            "min_window",
        ),
        (
            DriftParams(cooldown_minutes=60),
            DriftState(last_retrain=NOW - timedelta(minutes=30)),
            report("a"),
            False,
            1,
            "cool-down",
        ),
        (
            DriftParams(cooldown_minutes=60),
            DriftState(last_retrain=NOW - timedelta(minutes=61)),
            report("a"),
            True,
            0,
            "drift in 1",
        ),
        (
            DriftParams(consecutive_windows=2),
            DriftState(streak=1, last_report_id="a"),
            report("a"),
            False,
            1,
            "coalesced",
        ),
    ],
)
def test_should_retrain_truth_table(cfg, state, rep, retrain, streak, reason) -> None:
    d = should_retrain(rep, state, cfg, NOW)
    assert (d.retrain, d.state.streak) == (retrain, streak) and reason in d.reason
    assert d.state.last_retrain == (NOW if retrain else state.last_retrain)


def test_same_report_twice_counts_once() -> None:
    cfg = DriftParams(consecutive_windows=2)
    first = should_retrain(report("a"), DriftState(), cfg, NOW)
    again = should_retrain(report("a"), first.state, cfg, NOW + timedelta(minutes=1))
    assert not first.retrain and not again.retrain and again.state == first.state


def test_state_round_trips_through_json() -> None:
    s = DriftState(streak=2, last_retrain=NOW, last_report_id="abc")
    assert DriftState.from_dict(json.loads(json.dumps(s.to_dict()))) == s
    assert DriftState.from_dict(None) == DriftState()
