"""Fixtures for the reliability suite: one tiny trained work directory per session, cloned per test.

The base work directory (tiny backbone, 400 Fashion-MNIST images, git + DVC, embedded MLflow with
a v1 champion) costs ~25 s once; a clone is a file copy (~4 MB). A clone shares the base's MLflow
artifact folder for the runs that existed when it was copied (their artifact paths are absolute),
so tests only *read* those runs and never tamper with them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.flows.conftest import make_workdir
from xferlib.env import QUIET_DEFAULTS, QUIET_ENV

XFER = str(Path(sys.executable).with_name("xfer"))
QUIET = {**QUIET_ENV, **QUIET_DEFAULTS}  # PREFECT_LOGGING_LEVEL too: the suite wants WARNING
# Variables other suites set for the session; they would point a work dir at a foreign store.
FOREIGN = ("MLFLOW_TRACKING_URI", "XFER_ALERT_WEBHOOK", "PREFECT_API_URL", "XFER_HOME")


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in FOREIGN}
    return {**env, **QUIET, **extra}


def xfer(
    *args: str, wd: Path, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run `xfer ARGS --workdir WD --json` as a user would; returns the finished process."""
    cmd = [XFER, *args, "--workdir", str(wd), "--json"]
    return subprocess.run(
        cmd, env=env or clean_env(), capture_output=True, text=True, timeout=timeout
    )


def assert_one_line_error(proc: subprocess.CompletedProcess[str], *words: str) -> str:
    """Exit code 2, nothing on stdout, exactly one stderr line that names the problem."""
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 2, (proc.returncode, proc.stdout[-500:], proc.stderr[-2000:])
    assert len(lines) == 1, proc.stderr
    assert proc.stdout.strip() == ""
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


@pytest.fixture(autouse=True)
def _own_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in FOREIGN:
        monkeypatch.delenv(name, raising=False)
    for name, value in QUIET.items():
        monkeypatch.setenv(name, value)


@pytest.fixture(scope="session")
def fashion_xy() -> tuple[np.ndarray, np.ndarray]:
    from xferlib.data.fashion import load_fashion_mnist

    return load_fashion_mnist(split="train", limit=3000)


@pytest.fixture(scope="session")
def base_wd(
    tmp_path_factory: pytest.TempPathFactory, fashion_xy: tuple[np.ndarray, np.ndarray]
) -> Iterator[Path]:
    """A trained v1 champion in a work dir of its own (embedded sqlite MLflow in the work dir)."""
    with pytest.MonkeyPatch.context() as mp:
        for name in FOREIGN:
            mp.delenv(name, raising=False)
        root = tmp_path_factory.mktemp("reliability-base") / "wd"
        yield make_workdir(root, fashion_xy)


def clone(base: Path, dst: Path) -> Path:
    """A copy of the base work dir without its operational state (monitoring log, reports, ...)."""
    skip = shutil.ignore_patterns(
        "monitoring", "reports", "quarantine", "state", "alerts.jsonl", "checkpoints"
    )
    shutil.copytree(base, dst, symlinks=True, ignore=skip)
    return dst


@pytest.fixture
def wd(base_wd: Path, tmp_path: Path) -> Path:
    return clone(base_wd, tmp_path / "wd")


def files_under(root: Path, exclude: Path | None = None) -> set[str]:
    """Every path below root (files, folders, links), optionally leaving out one subtree."""
    out = set()
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        if exclude is not None and here.is_relative_to(exclude):
            dirnames[:] = []
            continue
        out |= {
            str(here / n) for n in dirnames + filenames if exclude is None or here / n != exclude
        }
    return out
