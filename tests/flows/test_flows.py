"""Orchestration under Prefect's real local API: drift -> event -> exactly one retrain run,
coalescing, the default gate rejecting a worse challenger and one that forgets, alerts to a real
webhook receiver."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from tests.flows.conftest import assert_default_gate, make_workdir, write_feedback, write_window
from xferlib.alerts import read_alerts
from xferlib.release.gate import GateResult

pytestmark = pytest.mark.usefixtures("prefect_api", "mlflow_store")


def _retrain_runs(workdir: Path, expect: int, timeout: float = 30.0) -> list:
    """Flow runs of the retrain deployment created for this work directory."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName

    deadline = time.monotonic() + timeout
    runs: list = []
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            all_runs = client.read_flow_runs(
                flow_filter=FlowFilter(name=FlowFilterName(any_=["retrain"]))
            )
            runs = [r for r in all_runs if r.parameters.get("workdir") == str(workdir)]
            if len(runs) >= expect and expect > 0:
                break
            time.sleep(0.5)
    return runs


@pytest.fixture(scope="module")
def retrain_deployment(prefect_api: None) -> str:
    from flows.deploy import deployments

    (dep,) = deployments(".", only=["retrain"])
    return str(dep.apply())


def test_clean_window_no_retrain_drifted_window_exactly_one_even_when_it_alarms_twice(
    tmp_path: Path, fashion, retrain_deployment: str
) -> None:
    from flows.pipeline import monitor_flow, score_flow

    x, y = fashion
    wd = make_workdir(tmp_path / "wd", fashion)
    fb = write_feedback(tmp_path / "fb", x[2000:2300], y[2000:2300], "invert")
    score_flow(str(wd), str(write_window(tmp_path / "clean", x[1000:1100])), "clean")
    clean = monitor_flow(str(wd), "clean", str(fb))
    assert clean["status"] == "no_drift" and not clean["retrain"]
    assert _retrain_runs(wd, expect=0, timeout=3) == []

    score_flow(str(wd), str(write_window(tmp_path / "d1", x[1100:1200], "invert")), "d1")
    first = monitor_flow(str(wd), "d1", str(fb))
    score_flow(str(wd), str(write_window(tmp_path / "d2", x[1200:1300], "invert")), "d2")
    second = monitor_flow(str(wd), "d2", str(fb))

    assert first["drift"] and first["retrain"]
    assert first["retrained"]["status"] == "requested"  # by the event, not inline
    assert second["drift"] and not second["retrain"]
    assert "coalesced" in second["reason"]
    runs = _retrain_runs(wd, expect=1)
    time.sleep(2)  # a second (wrong) run would have been created by now
    runs = _retrain_runs(wd, expect=1, timeout=1)
    assert len(runs) == 1
    assert runs[0].parameters["report_id"] == first["report_id"]
    assert runs[0].parameters["feedback"] == str(fb)
    kinds = [a["kind"] for a in read_alerts(wd / "alerts.jsonl")]
    assert kinds.count("drift_detected") == 2  # both windows alarm; one retrain


def test_retrain_with_a_worse_challenger_is_rejected_and_the_champion_stays(
    tmp_path: Path, fashion
) -> None:
    from flows.pipeline import retrain_flow
    from xferlib.context import Context
    from xferlib.registry import champion_version

    x, y = fashion
    wd = make_workdir(tmp_path / "wd", fashion)
    ctx = Context.load(wd)
    before = champion_version(ctx.wd.mlflow_uri, ctx.params.registry.model_name)
    fb = write_feedback(tmp_path / "fb", x[2000:2300], y[2000:2300], "invert", shuffle_labels=True)
    result = retrain_flow(str(wd), str(fb), report_id="manual", window_id="bad")
    assert result["status"] == "finished" and result["action"] == "reject"
    assert champion_version(ctx.wd.mlflow_uri, ctx.params.registry.model_name) == before
    kinds = [a["kind"] for a in read_alerts(wd / "alerts.jsonl")]
    assert {"retrain_started", "rejected", "retrain_finished"} <= set(kinds)
    assert_default_gate(wd)


class _Receiver(BaseHTTPRequestHandler):
    bodies: list[dict] = []
    status = 200

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length", 0))
        type(self).bodies.append(json.loads(self.rfile.read(length)))
        self.send_response(type(self).status)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[_Receiver]]:
    handler = type("Receiver", (_Receiver,), {"bodies": [], "status": 200})
    server = HTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv(
        "XFER_ALERT_WEBHOOK", f"http://127.0.0.1:{server.server_port}/hooks/T000/SECRET"
    )
    yield handler
    server.shutdown()


def test_a_real_webhook_receives_the_drift_alert_and_a_500_does_not_fail_the_flow(
    tmp_path: Path, fashion, receiver: type[_Receiver]
) -> None:
    from flows.pipeline import monitor_flow, score_flow

    x, y = fashion
    wd = make_workdir(tmp_path / "wd", fashion)
    fb = write_feedback(tmp_path / "fb", x[2000:2100], y[2000:2100], "invert")
    score_flow(str(wd), str(write_window(tmp_path / "d1", x[1100:1200], "invert")), "d1")
    state = monitor_flow(str(wd), "d1", str(fb), return_state=True)
    assert state.is_completed()
    texts = json.dumps(receiver.bodies)
    assert "drift_detected" in texts or "drift" in texts.lower()

    receiver.status = 500  # the webhook breaks: the next alarm's flow must still complete
    score_flow(str(wd), str(write_window(tmp_path / "d2", x[1300:1400], "invert")), "d2")
    state = monitor_flow(str(wd), "d2", str(fb), return_state=True)
    assert state.is_completed()
    last = [a for a in read_alerts(wd / "alerts.jsonl") if a["kind"] == "drift_detected"][-1]
    assert last["webhook"] == "failed"
    assert "SECRET" not in (wd / "alerts.jsonl").read_text()


def test_gate_rejects_a_challenger_that_forgets_the_old_holdout_and_alerts(
    tmp_path: Path, fashion, receiver: type[_Receiver]
) -> None:
    """Fitted on the shifted feedback alone (no replay), the challenger learns the new domain and
    forgets the old one: the default gate must say no, for the forgetting.

    A head-only retrain: the tiny net fine-tuned in full without replay forgets so much (0.67 ->
    0.29 on the old holdout) that the min_accuracy floor rejects it first; retraining the head
    alone forgets ~6 points and stays above the floor, so here max_forgetting alone must catch it.
    """
    from flows.pipeline import retrain_flow
    from xferlib.context import Context
    from xferlib.registry import champion_version

    x, y = fashion
    forgetful = {"retrain": {"strategy": "linear_probe", "epochs": 6, "replay_size": 0}}
    wd = make_workdir(tmp_path / "wd", fashion, forgetful)
    ctx = Context.load(wd)
    before = champion_version(ctx.wd.mlflow_uri, ctx.params.registry.model_name)
    fb = write_feedback(tmp_path / "fb", x[2000:2300], y[2000:2300], "invert")
    out = retrain_flow(str(wd), str(fb), report_id="manual", window_id="forgetful")

    assert out["status"] == "finished"
    result = GateResult.from_dict(out["result"])  # the stage's own figures
    decision = result.decision
    assert decision.action == "reject", decision.reasons
    champ = result.champion_accuracy
    assert champ is not None and champ["new"] is not None and champ["holdout"] is not None
    assert result.accuracy["new"] > champ["new"]  # it did learn the shift
    gate = ctx.params.registry
    assert champ["holdout"] - result.accuracy["holdout"] > gate.max_forgetting
    assert result.accuracy["holdout"] >= gate.min_accuracy  # the floor is not what rejects it
    (reason,) = [r for r in decision.reasons if "forgetting" in r]
    assert reason.startswith("old holdout") and reason.endswith("too much"), reason
    after = champion_version(ctx.wd.mlflow_uri, ctx.params.registry.model_name)
    assert str(after) == str(before) == "1"
    rejected = [a for a in read_alerts(wd / "alerts.jsonl") if a["kind"] == "rejected"]
    assert len(rejected) == 1 and rejected[0]["model_version"] == result.version
    assert rejected[0]["webhook"] == "sent", rejected[0]
    assert any(
        "rejected" in json.dumps(body) and "too much" in json.dumps(body)
        for body in receiver.bodies
    )
    assert_default_gate(wd)
