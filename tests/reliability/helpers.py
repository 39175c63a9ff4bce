"""Small helpers shared by the reliability tests: windows of images, drift reports, processes."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import numpy as np

from tests.flows.conftest import write_window
from xferlib.stages.results import DriftResult


def window(
    folder: Path,
    fashion_xy: tuple[np.ndarray, np.ndarray],
    start: int,
    n: int,
    shift: str | None = None,
) -> Path:
    x, _ = fashion_xy
    return write_window(folder, x[start : start + n], shift)


def drift_report(wd: Path, folder: Path, window_id: str) -> DriftResult:
    """Score a folder into the monitoring log and check it (in-process, the stages the flows call)."""
    from xferlib.stages import monitor

    monitor.score(wd, str(folder), window_id=window_id)
    return monitor.drift(wd, window_id=window_id)


def wait_for(predicate: Any, timeout: float, what: str, step: float = 0.01) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(step)
    raise TimeoutError(f"{what} did not happen within {timeout} s")


def pids_matching(needle: str) -> list[int]:
    """Live processes whose command line contains `needle` (zombies excluded)."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if needle in cmd and state != "Z":
            out.append(int(entry.name))
    return out


def kill_group(pid: int) -> None:
    """Best-effort cleanup of a process group this test started."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")
