"""`xfer ui` as a real subprocess: MLflow and the Evidently UI answer on 127.0.0.1 over the work
dir's stores (the Evidently API lists the model's project and charts the verdict series a
dashboard panel asks for, and follows windows checked while it runs), and a SIGINT or SIGTERM to xfer stops every process it started."""

from __future__ import annotations

import json
import signal
import time
import urllib.request
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.integration.ui_process import running_xfer_ui
from xferlib.drift import DriftReport
from xferlib.drift import TestResult as DriftTest
from xferlib.drift.estimate import AccuracyEstimate
from xferlib.drift.workspace import project_id, record_window
from xferlib.workdir import Workdir

pytestmark = pytest.mark.integration


def _report(report_id: str, p: float) -> DriftReport:
    tests = {
        "embedding_mmd": DriftTest(0.1, p, 0.0125, p <= 0.0125),
        "pred_chi2": DriftTest(3.0, 0.5, 0.0125, False),
    }
    acc = AccuracyEstimate("atc", 0.8, 0.7, 0.9, 0.9, 0.85, 0.8, 0.9, 200)
    return DriftReport(
        p <= 0.0125, "drift" if p <= 0.0125 else "no_drift", 200, 300, "1", tests,
        [], report_id=report_id, accuracy=acc,
    )  # fmt: skip


def _alive(p: psutil.Process) -> bool:
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as r:
        body = r.read().decode()
    return json.loads(body) if body[:1] in "[{" else body


def _post(url: str, payload: dict[str, Any]) -> Any:
    req = urllib.request.Request(
        url, json.dumps(payload).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read().decode())


# SIGINT (Ctrl-C) in the default suite; the same run stopped by SIGTERM in the slow one (~30 s each)
@pytest.mark.parametrize(
    "sig",
    [signal.SIGINT, pytest.param(signal.SIGTERM, marks=pytest.mark.slow)],
    ids=["SIGINT", "SIGTERM"],
)
def test_xfer_ui_serves_mlflow_and_evidently_and_a_signal_stops_every_child(
    tmp_path: Path, sig: signal.Signals
) -> None:
    wd = Workdir(tmp_path / "wd")
    for i, p in enumerate((0.4, 0.001)):
        record_window(wd.evidently_workspace, "uitest", _report(f"r{i}", p), {"window_id": f"w{i}"})
    children: list[psutil.Process] = []
    with running_xfer_ui(wd.root, sig) as (proc, urls):
        children = psutil.Process(proc.pid).children(recursive=True)
        assert {c.pid for c in children} >= set(urls["pids"].values())
        assert urls["prefect"] is None and "PREFECT_API_URL unset" in urls["notes"][0]
        for name in ("mlflow", "evidently"):
            assert urls[name].startswith("http://127.0.0.1:")

        assert _get(urls["mlflow"] + "/health") == "OK"
        projects = _get(urls["evidently"] + "/api/projects")
        assert [p["name"] for p in projects] == ["uitest"]
        assert projects[0]["id"] == str(project_id("uitest"))
        pid = projects[0]["id"]
        assert len(_get(f"{urls['evidently']}/api/projects/{pid}/snapshots")) == 2
        # what the "p-value vs threshold" panel asks for: one point per window
        series = _post(
            f"{urls['evidently']}/api/v2/snapshots/{pid}/data_series_batch",
            {"series_filter": [{
                "tags": [], "metadata": {}, "metric": "evidently:metric_v2:MeanValue",
                "metric_labels": {"column": "embedding_mmd_p_value"},
            }]},
        )  # fmt: skip
        assert [s["values"] for s in series["series"]] == [[0.4, 0.001]]
        # a window checked while the UI runs shows up without a restart
        record_window(wd.evidently_workspace, "uitest", _report("r2", 0.2), {"window_id": "w2"})
        deadline = time.monotonic() + 60
        while len(_get(f"{urls['evidently']}/api/projects/{pid}/snapshots")) < 3:
            assert time.monotonic() < deadline, "the new snapshot never reached the running UI"
            time.sleep(1)
    assert proc.returncode == 130, proc.stderr.read() if proc.stderr else ""
    deadline = time.monotonic() + 10
    alive = [c for c in children if _alive(c)]
    while alive and time.monotonic() < deadline:
        time.sleep(0.5)
        alive = [c for c in alive if _alive(c)]
    assert alive == [], f"left running: {[c.cmdline() for c in alive]}"
