"""The retrain lifecycle through its plain-call entry points (`xferlib.loop.Direct`, `xfer monitor`,
`xfer retrain`) on a real tiny work directory: a crashed retrain is reported as failed and frees
the next window, a manual retrain holds the in-flight marker, and monitor decides per window."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import yaml

from tests.flows.conftest import write_feedback
from tests.reliability.conftest import XFER, assert_one_line_error, clean_env, xfer
from tests.reliability.helpers import wait_for, window
from xferlib import loop
from xferlib.alerts import read_alerts
from xferlib.stages import trigger


def _kinds(wd: Path) -> list[str]:
    return [a["kind"] for a in read_alerts(wd / "alerts.jsonl")]


def _unreadable_feedback(folder: Path) -> Path:
    """A class folder of the champion whose files are not images: ingest accepts none of them."""
    (folder / "Coat").mkdir(parents=True)
    for i in range(20):
        (folder / "Coat" / f"scan{i:02d}.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    return folder


def test_a_crashed_retrain_alerts_failed_frees_the_marker_and_the_next_window_retrains(
    wd: Path, tmp_path: Path, fashion_xy: tuple[np.ndarray, np.ndarray]
) -> None:
    raw = yaml.safe_load((wd / "params.yaml").read_text())
    raw["drift"]["cooldown_minutes"] = 30.0  # a crash must not start the cool-down
    (wd / "params.yaml").write_text(yaml.safe_dump(raw))
    bad, orch = _unreadable_feedback(tmp_path / "fb"), loop.Direct(wd)

    first = loop.monitor_window(
        orch, "d1", src=str(window(tmp_path / "d1", fashion_xy, 1000, 100, "invert")), feedback=bad
    )
    assert first.drift and first.retrain, first
    assert first.retrained is not None and first.retrained.status == "failed"
    assert "no valid labelled image" in first.retrained.error
    assert _kinds(wd).count("retrain_started") == 1 and "retrain_finished" not in _kinds(wd)
    (failed,) = [a for a in read_alerts(wd / "alerts.jsonl") if a["kind"] == "retrain_failed"]
    assert first.report_id in failed["message"] and "no valid labelled image" in failed["message"]
    assert trigger.in_flight(wd) is None

    second = loop.monitor_window(
        orch, "d2", src=str(window(tmp_path / "d2", fashion_xy, 1100, 100, "invert")), feedback=bad
    )
    assert second.drift and second.retrain, second.reason  # neither in flight nor cooling down
    assert second.retrained is not None and second.retrained.status == "failed"
    assert _kinds(wd).count("retrain_started") == 2 and _kinds(wd).count("retrain_failed") == 2
    assert "retrain_finished" not in _kinds(wd) and trigger.in_flight(wd) is None


def test_xfer_retrain_holds_the_marker_refuses_a_second_request_and_alerts(
    wd: Path, tmp_path: Path, fashion_xy: tuple[np.ndarray, np.ndarray]
) -> None:
    x, y = fashion_xy
    fb = write_feedback(tmp_path / "fb", x[2000:2200], y[2000:2200], "invert")
    state = wd / "state" / "trigger.json"
    cmd = [XFER, "retrain", "--feedback", str(fb), "--workdir", str(wd), "--json"]
    first = subprocess.Popen(
        cmd, env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        wait_for(
            lambda: state.exists() and "manual-" in str(json.loads(state.read_text())["in_flight"]),
            60,
            "the manual retrain taking the in-flight marker",
        )
        holder = json.loads(state.read_text())["in_flight"]
        second = xfer("retrain", "--feedback", str(fb), wd=wd)
        assert first.poll() is None, "the first retrain ended before the second was refused"
    finally:
        out, err = first.communicate(timeout=600)
    line = assert_one_line_error(second, "RetrainInFlight", holder, "--force")
    assert line.startswith("xfer retrain: error:"), line

    assert first.returncode == 0, err[-3000:]
    result = json.loads(out)
    assert result["status"] == "finished" and result["request_id"] == holder
    assert result["version"] == "2" and result["action"] in ("promote", "reject")
    kinds = _kinds(wd)
    assert kinds.count("retrain_started") == 1 and kinds.count("retrain_finished") == 1
    assert "retrain_failed" not in kinds
    after = json.loads(state.read_text())
    assert after["in_flight"] is None and after["last_manual"]["request"] == holder
    assert after["drift"]["last_retrain"]  # recorded: a drift retrain right after waits it out


def test_xfer_monitor_is_quiet_on_a_clean_window_and_decides_on_a_shifted_one(
    wd: Path, tmp_path: Path, fashion_xy: tuple[np.ndarray, np.ndarray]
) -> None:
    clean_dir = window(tmp_path / "clean", fashion_xy, 1000, 100)
    clean = xfer("monitor", str(clean_dir), "--window-id", "c1", wd=wd)
    assert clean.returncode == 0, clean.stderr[-2000:]
    quiet = json.loads(clean.stdout)
    assert quiet["window_id"] == "c1" and quiet["status"] == "no_drift"
    assert not quiet["retrain"] and quiet["retrained"] is None

    shifted_dir = window(tmp_path / "shifted", fashion_xy, 1100, 100, "invert")
    shifted = xfer("monitor", str(shifted_dir), "--window-id", "s1", wd=wd)
    assert shifted.returncode == 0, shifted.stderr[-2000:]
    loud = json.loads(shifted.stdout)
    assert loud["status"] == "drift" and loud["drift"] and loud["retrain"], loud
    assert loud["retrained"]["status"] == "labels_needed" and "--feedback" in loud["next"]
    # no retrain started without labels: the incident asked for them instead
    assert _kinds(wd) == ["drift_detected", "labels_requested"]
    assert loud["retrained"]["incident"] in loud["next"]
    assert trigger.in_flight(wd) is None  # the request was withdrawn, not left in flight
