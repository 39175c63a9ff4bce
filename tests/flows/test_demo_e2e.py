"""The product's main job end to end at tiny scale: `xfer demo --quick --json` with a real Prefect
server on 127.0.0.1 and a runner executing the drift-triggered retrain deployment."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def test_quick_demo_loop_retrains_once_on_drift_and_stops_its_servers(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    env.pop("MLFLOW_TRACKING_URI", None)  # the demo uses its own embedded store
    env.pop("PREFECT_API_URL", None)
    out = subprocess.run(
        [str(Path(sys.executable).parent / "xfer"), "demo", "--quick", "--json", "--workdir", str(tmp_path / "demo")],
        capture_output=True, text=True, env=env, timeout=1200,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads(out.stdout)
    statuses = {w["window"]: w["status"] for w in summary["windows"]}
    assert all(s == "no_drift" for w, s in statuses.items() if "clean" in w)
    assert statuses["w03-shifted"] == "drift"
    assert len(summary["retrains"]) == 1 and summary["retrains"][0]["flow_run_id"]
    kinds = {a["kind"] for a in summary["alerts"]}
    assert {
        "drift_detected",
        "retrain_started",
        "retrain_finished",
        "promoted",
    } <= kinds  # v1 is promoted
    assert set(summary["accuracy"]) >= {"1"}
    # the Prefect server and runner stopped with the demo
    port_file = tmp_path / "demo" / "logs" / "prefect-server.log"
    assert port_file.exists()
    leftovers = subprocess.run(
        ["pgrep", "-f", str(tmp_path / "demo")], capture_output=True, text=True
    )
    assert leftovers.stdout.strip() == ""
    with socket.socket() as s:  # nothing of ours still listens on the demo's API port
        assert s.connect_ex(("127.0.0.1", summary["prefect_port"])) != 0
