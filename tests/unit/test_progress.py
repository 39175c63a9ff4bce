"""Progress bars appear on a terminal only: a real pseudo-terminal on stderr gets tqdm bars, a pipe
(CI, `--json` consumers) gets none, XFER_PROGRESS=0 turns them off, and stdout stays one JSON object."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import struct
import subprocess
import sys
import termios
from pathlib import Path

import numpy as np
import pytest

from xferlib.data.fashion import FASHION_CLASSES, export_imagefolder
from xferlib.env import QUIET_ENV

XFER = str(Path(sys.executable).parent / "xfer")


def _run(args: list[str], *, tty: bool, **env: str) -> tuple[dict, str]:
    """Run `xfer ... --json`; stderr on a pseudo-terminal (tty) or a pipe. (stdout JSON, stderr)."""
    full_env = {**os.environ, **QUIET_ENV, **env}
    if not tty:
        out = subprocess.run([XFER, *args, "--json"], capture_output=True, text=True, env=full_env)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout), out.stderr
    master, slave = pty.openpty()
    # a terminal of 30 x 100 (a fresh pty has 0 columns, and tqdm draws nothing in 0 columns)
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    proc = subprocess.Popen(
        [XFER, *args, "--json"], stdout=subprocess.PIPE, stderr=slave, env=full_env
    )
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed its end of the terminal
            break
        if not data:
            break
        chunks.append(data)
    stdout = proc.stdout.read() if proc.stdout else b""
    assert proc.wait() == 0, b"".join(chunks).decode(errors="replace")
    os.close(master)
    return json.loads(stdout), b"".join(chunks).decode(errors="replace")


@pytest.fixture
def workdir(tmp_path: Path) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (40, 28, 28), dtype=np.uint8)
    src = tmp_path / "src"
    export_imagefolder(x, rng.integers(0, 10, 40), FASHION_CLASSES, src, "p")
    wd = tmp_path / "wd"
    subprocess.run([XFER, "init", "--workdir", str(wd)], check=True, capture_output=True)
    return wd, src


def test_bar_on_a_terminal_none_on_a_pipe_and_json_unchanged(workdir: tuple[Path, Path]) -> None:
    wd, src = workdir
    args = ["ingest", str(src), "--workdir", str(wd), "--no-push"]
    on_tty, err_tty = _run([*args, "--dataset", "a"], tty=True)
    assert "ingest" in err_tty and "img" in err_tty and "\r" in err_tty, err_tty[-500:]
    piped, err_pipe = _run([*args, "--dataset", "b"], tty=False)
    assert "\r" not in err_pipe and " img/s" not in err_pipe, err_pipe[-500:]
    # the same object on stdout either way (the counts; the dataset names differ by design)
    assert on_tty["accepted"] == piped["accepted"] == 40


def test_xfer_progress_off_silences_the_terminal(workdir: tuple[Path, Path]) -> None:
    wd, src = workdir
    args = ["ingest", str(src), "--workdir", str(wd), "--no-push", "--dataset", "c"]
    _, err = _run(args, tty=True, XFER_PROGRESS="0")
    assert "\r" not in err and " img/s" not in err, err[-500:]
