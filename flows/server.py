"""Start and stop local services for the orchestrated loop: a real `prefect server` on 127.0.0.1
and a runner process serving the deployments. Both stop with their owner, also on Ctrl-C/SIGTERM.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

from xferlib.env import quiet_environ
from xferlib.services import executable, free_port, wait_healthy

# what signal.signal returns: a handler, SIG_DFL/SIG_IGN, or None (not installed from Python)
_Handler = Callable[[int, FrameType | None], Any] | int | signal.Handlers | None
_bin = executable  # flows/demo.py's name for it


class Services:
    """`with Services(home) as api_url:` a Prefect server (and later a runner) for the block."""

    def __init__(self, home: Path, port: int | None = None, log_dir: Path | None = None) -> None:
        self.home, self.port = home, port or free_port()
        self.log_dir = log_dir or home
        self.procs: list[subprocess.Popen[bytes]] = []
        self.api_url = f"http://127.0.0.1:{self.port}/api"
        self._old_term: _Handler = None

    def env(self) -> dict[str, str]:
        return quiet_environ(PREFECT_HOME=str(self.home), PREFECT_API_URL=self.api_url)

    def spawn(self, args: list[str], log_name: str) -> subprocess.Popen[bytes]:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_dir / log_name, "ab")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(
            args, env=self.env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.procs.append(proc)
        return proc

    def __enter__(self) -> Services:
        self.home.mkdir(parents=True, exist_ok=True)
        self._old_term = signal.signal(signal.SIGTERM, _raise_interrupt)
        os.environ.update(self.env())  # in-process Prefect clients talk to this server
        proc = self.spawn(
            [_bin("prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(self.port)],
            "prefect-server.log",
        )
        try:
            wait_healthy(f"{self.api_url}/health", 120, proc)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in reversed(self.procs):
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        self.procs.clear()

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
        if self._old_term is not None:
            signal.signal(signal.SIGTERM, self._old_term)


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")
