"""`xfer ui` as a real subprocess: MLflow and the Evidently UI answer on 127.0.0.1 over the work
dir's stores (the Evidently API lists the model's project and charts the verdict series a
dashboard panel asks for, and follows windows checked while it runs), and a SIGINT or SIGTERM to xfer stops every process it started."""

from __future__ import annotations

import dataclasses
import json
import signal
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pytest

from tests.drift.synthetic import window
from tests.integration.ui_process import running_xfer_ui
from xferlib.config import DriftParams
from xferlib.drift import DriftReport, check_drift
from xferlib.drift.estimate import AccuracyEstimate
from xferlib.drift.workspace import project_id, record_window
from xferlib.workdir import Workdir

pytestmark = pytest.mark.integration


def _report(out: Path, shift: float) -> DriftReport:
    """A real checked window (synthetic rows; Evidently's report dumped in `out`) + an estimate."""
    rng = np.random.default_rng(int(shift * 10))
    ref, cur = window(400, rng, k=8), window(200, rng, k=8, shift="embedding", amount=shift)
    cfg = DriftParams(min_window=100, permutations=99)
    report = check_drift(ref, cur, cfg, reference_version="1", out_dir=out, save_json=False)
    acc = AccuracyEstimate("atc", 0.8, 0.7, 0.9, 0.9, 0.85, 0.8, 0.9, 200)
    return dataclasses.replace(report, accuracy=acc)


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
    reports = [_report(tmp_path / f"r{i}", shift) for i, shift in enumerate((0.0, 2.0))]
    for i, report in enumerate(reports):
        record_window(wd.evidently_workspace, "uitest", report, {"window_id": f"w{i}"})
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
                "tags": [], "metadata": {}, "metric": "evidently:metric_v2:DriftTestValue",
                "metric_labels": {"test": "embedding_mmd", "value": "p_value"},
            }]},
        )  # fmt: skip
        p_values = [r.tests["embedding_mmd"].p_value for r in reports]
        assert [s["values"] for s in series["series"]] == [p_values]
        assert [r.drift for r in reports] == [False, True]
        # a window checked while the UI runs shows up without a restart
        late = _report(tmp_path / "r2", 0.5)
        record_window(wd.evidently_workspace, "uitest", late, {"window_id": "w2"})
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
