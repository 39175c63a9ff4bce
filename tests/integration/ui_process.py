"""`xfer ui` as a real subprocess for the tests: started over a work dir on free ports, its URLs
read from the one line `--json` prints, stopped by a signal however the test ends."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

XFER = str(Path(sys.executable).with_name("xfer"))
START_TIMEOUT_S = 240.0  # both servers healthy; far longer than on an idle machine


def read_json_line(proc: subprocess.Popen[str], timeout: float) -> dict[str, Any]:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    assert ready, f"xfer ui printed nothing in {timeout:.0f}s"
    line = proc.stdout.readline()
    assert line, f"xfer ui exited ({proc.poll()}) without printing its URLs"
    return dict(json.loads(line))


@contextmanager
def running_xfer_ui(
    workdir: Path, sig: signal.Signals = signal.SIGINT
) -> Iterator[tuple[subprocess.Popen[str], dict[str, Any]]]:
    """`with running_xfer_ui(W) as (proc, urls):` the UIs over W's own stores (no tracking
    server, no Prefect from the environment); `sig` stops xfer when the block ends."""
    env = {
        k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "PREFECT_API_URL")
    }
    proc = subprocess.Popen(
        [XFER, "ui", "--workdir", str(workdir), "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        yield proc, read_json_line(proc, START_TIMEOUT_S)
    finally:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
