"""The product's main job end to end at tiny scale: `xfer demo --quick --json` with a real Prefect
server on 127.0.0.1 and a runner executing the drift-triggered retrain deployment.

The demo's promise, under the default promotion gate: clean windows stay quiet, the first shifted
window alarms, the retrained v2 is promoted, the next shifted window is quiet again, v2 recovers at
least half of the shifted-domain accuracy v1 lost and loses at most 1 point on the clean holdout.
"""

from __future__ import annotations

import json
import socket
import subprocess
from pathlib import Path

import pytest

from tests.flows.conftest import assert_default_gate, run_quick_demo

pytestmark = pytest.mark.slow

MIN_RECOVERY = 0.5  # share of v1's shifted-domain loss that v2 must win back
MAX_CLEAN_DROP = 0.01  # clean-holdout accuracy v2 may lose (1 point); the gate allows the same


def test_quick_demo_keeps_its_promise_under_the_default_gate_and_stops_its_servers(
    tmp_path: Path,
) -> None:
    workdir = tmp_path / "demo"
    out = run_quick_demo(workdir)
    assert out.returncode == 0, out.stderr[-3000:]
    s = json.loads(out.stdout)

    statuses = {w["window"]: w["status"] for w in s["windows"]}
    assert [w for w in statuses if "clean" in w] == ["w01-clean", "w02-clean"]
    assert all(statuses[w] == "no_drift" for w in ("w01-clean", "w02-clean")), statuses
    assert statuses["w03-shifted"] == "drift", statuses
    (retrain,) = s["retrains"]
    assert retrain["window"] == "w03-shifted" and retrain["flow_run_id"]
    assert retrain["decision"] == "promote", retrain["reasons"]
    assert s["champion_version"] == retrain["version"] == "2"
    assert statuses["w04-shifted"] == "no_drift", statuses  # v2's reference is the new domain

    acc = s["accuracy"]
    assert set(acc) == {"1", "2"}
    lost = acc["1"]["clean"] - acc["1"]["shifted"]
    assert lost > 0.15, acc  # the shift really costs v1, so a recovery share means something
    recovered = (acc["2"]["shifted"] - acc["1"]["shifted"]) / lost
    assert s["recovered_fraction"] == pytest.approx(recovered, abs=1e-3)
    assert s["clean_change"] == pytest.approx(acc["2"]["clean"] - acc["1"]["clean"], abs=1e-4)
    assert recovered >= MIN_RECOVERY, (recovered, acc, retrain["reasons"])
    assert s["clean_change"] >= -MAX_CLEAN_DROP, (s["clean_change"], acc)

    kinds = [a["kind"] for a in s["alerts"]]
    assert {"drift_detected", "retrain_started", "retrain_finished"} <= set(kinds)
    assert [a["model_version"] for a in s["alerts"] if a["kind"] == "promoted"] == ["1", "2"]
    assert "rejected" not in kinds
    # the Prefect server and runner stopped with the demo
    assert (workdir / "logs" / "prefect-server.log").exists()
    leftovers = subprocess.run(["pgrep", "-f", str(workdir)], capture_output=True, text=True)
    assert leftovers.stdout.strip() == ""
    with socket.socket() as sock:  # nothing of ours still listens on the demo's API port
        assert sock.connect_ex(("127.0.0.1", s["prefect_port"])) != 0
    assert_default_gate(workdir)  # --quick shrinks the data, never the gate
