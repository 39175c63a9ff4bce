"""Local servers xfer starts as child processes on 127.0.0.1 (`xfer ui`; the demo's Prefect server
in flows/server.py uses the same helpers): a free port each, an HTTP answer awaited, and every
child stopped with its owner, also on Ctrl-C / SIGTERM.

Each child gets its own session (process group), so a terminal's Ctrl-C reaches only xfer, which
then stops each group as a whole: the servers' own workers go with them, no orphans.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

# what signal.signal returns: a handler, SIG_DFL/SIG_IGN, or None (not installed from Python)
_Handler = Callable[[int, FrameType | None], Any] | int | signal.Handlers | None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def executable(name: str) -> str:
    """A console script of this interpreter's environment (the venv's `mlflow`), else on PATH."""
    cand = Path(sys.executable).parent / name
    return str(cand) if cand.exists() else name


def answers(url: str, timeout: float = 2.0) -> bool:
    """Whether `url` answers HTTP 200 now."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return bool(r.status == 200)
    except (OSError, urllib.error.URLError):
        return False


def wait_healthy(url: str, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    """Block until `url` answers 200; fail at once if `proc` (its server) exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(
                f"the server process exited with code {proc.returncode} before {url} answered"
            )
        if answers(url):
            return
        time.sleep(0.5)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f}s")


class ProcessGroup:
    """`with ProcessGroup(log_dir) as group:` children spawned in the block stop when it ends,
    however it ends; inside it SIGTERM raises KeyboardInterrupt, as Ctrl-C does."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self._old_term: _Handler = None

    def spawn(self, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        """Start `args` in its own session, output appended to `<log_dir>/<name>.log`."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log(name), "ab") as log:  # the child keeps its own descriptor
            proc = subprocess.Popen(
                args, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.procs[name] = proc
        return proc

    def log(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def exited(self) -> dict[str, int]:
        """Children that stopped on their own: name -> exit code."""
        return {n: p.returncode for n, p in self.procs.items() if p.poll() is not None}

    def stop(self) -> None:
        """SIGTERM to each child's whole process group, SIGKILL after 15 s."""
        for proc in self.procs.values():
            if proc.poll() is None:
                _signal_group(proc.pid, signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                _signal_group(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
            _signal_group(proc.pid, signal.SIGKILL)  # workers the leader left behind
        self.procs.clear()

    def __enter__(self) -> ProcessGroup:
        self._old_term = signal.signal(signal.SIGTERM, _raise_interrupt)
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
        if self._old_term is not None:
            signal.signal(signal.SIGTERM, self._old_term)


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:  # the group is already gone
        pass


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")
