"""The Prefect retrain flow runs the same lifecycle as the plain calls: a crashed retrain alerts
`retrain_failed`, frees the in-flight marker the drift decision took, and fails the flow run."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.flows.conftest import make_workdir
from xferlib.alerts import read_alerts
from xferlib.drift import DriftReport
from xferlib.stages.results import DriftResult

pytestmark = pytest.mark.usefixtures("prefect_api", "mlflow_store")


def test_a_crashed_retrain_flow_run_fails_alerts_and_frees_the_marker(
    tmp_path: Path, fashion
) -> None:
    from flows.pipeline import retrain_flow
    from xferlib.stages import trigger

    wd = make_workdir(tmp_path / "wd", fashion)
    report = DriftReport(
        drift=True, status="drift", report_id="r-crash", window_size=500,
        reference_size=300, reference_version="1", tests={}, drifted_columns=["x"],
    )  # fmt: skip
    decision = trigger.decide(wd, DriftResult(report, window_id="w1"))
    assert decision.retrain and trigger.in_flight(wd) == "r-crash"
    missing = tmp_path / "labels-never-arrived"  # the event's feedback folder does not exist
    state = retrain_flow(
        str(wd), str(missing), report_id="r-crash", window_id="w1", return_state=True
    )
    assert state.is_failed()
    kinds = [a["kind"] for a in read_alerts(wd / "alerts.jsonl")]
    assert "retrain_started" in kinds and "retrain_finished" not in kinds
    (failed,) = [a for a in read_alerts(wd / "alerts.jsonl") if a["kind"] == "retrain_failed"]
    assert "r-crash" in failed["message"] and failed["details"]["flow_run_id"]
    assert trigger.in_flight(wd) is None
