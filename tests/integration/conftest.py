"""Real MLflow backends for the integration tests: an `mlflow server` over HTTP and embedded sqlite.

One server and one sqlite DB per session (a new DB costs 5-7 s of migrations): the embedded DB is a
copy of the server's freshly migrated one. Tests use their own model/experiment names, so sharing
is safe. `tracking_uri` is parametrised so every registry test runs against both backends.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from xferlib import env

QUIET_ENV = {
    **env.QUIET_ENV,
    "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",  # 2 processes instead of 10
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class MlflowServer:
    """An `mlflow server` subprocess on 127.0.0.1; `kill()` / `start()` for fault injection."""

    db: Path
    artifacts: Path
    log: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 90.0) -> MlflowServer:
        mlflow_bin = Path(sys.executable).with_name("mlflow")
        cmd = [
            str(mlflow_bin), "server", "--host", "127.0.0.1", "--port", str(self.port),
            "--workers", "1", "--backend-store-uri", f"sqlite:///{self.db}",
            "--artifacts-destination", str(self.artifacts),
        ]  # fmt: skip
        with open(self.log, "ab") as log:
            # own process group: kill() takes down uvicorn's worker too
            self.proc = subprocess.Popen(
                cmd,
                stdout=log,
                stderr=log,
                env=env.quiet_environ(**QUIET_ENV),
                start_new_session=True,
            )
        self._wait_healthy(timeout_s)
        return self

    def _wait_healthy(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"mlflow server exited; see {self.log}: {self.log.read_text()[-2000:]}"
                )
            try:
                with urllib.request.urlopen(f"{self.uri}/health", timeout=2) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                time.sleep(0.3)
        self.kill()
        raise RuntimeError(f"mlflow server not healthy within {timeout_s} s; see {self.log}")

    def kill(self) -> None:
        """SIGKILL the whole process group (a crash, not a graceful stop)."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, 9)
            self.proc.wait(timeout=30)
        self.proc = None


@pytest.fixture(scope="session", autouse=True)
def _quiet_mlflow_env() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as mp:
        for key, value in QUIET_ENV.items():
            mp.setenv(key, value)
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        yield


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    root = tmp_path_factory.mktemp("mlflow-server")
    server = MlflowServer(root / "mlflow.db", root / "artifacts", root / "server.log").start()
    yield server
    server.kill()


@pytest.fixture(scope="session")
def sqlite_uri(mlflow_server: MlflowServer, tmp_path_factory: pytest.TempPathFactory) -> str:
    """Embedded sqlite, from a copy of the server's DB taken before any test wrote to it."""
    root = tmp_path_factory.mktemp("mlflow-embedded")
    shutil.copy(mlflow_server.db, root / "mlflow.db")
    return f"sqlite:///{root / 'mlflow.db'}"


@pytest.fixture(scope="session", params=["server", "embedded sqlite"])
def tracking_uri(
    request: pytest.FixtureRequest, mlflow_server: MlflowServer, sqlite_uri: str
) -> str:
    return mlflow_server.uri if request.param == "server" else sqlite_uri


@pytest.fixture
def killable_server(mlflow_server: MlflowServer, tmp_path: Path) -> Iterator[MlflowServer]:
    """A private server the test may kill and restart (never the shared one)."""
    shutil.copy(mlflow_server.db, tmp_path / "mlflow.db")  # already migrated: boots in seconds
    server = MlflowServer(tmp_path / "mlflow.db", tmp_path / "artifacts", tmp_path / "server.log")
    yield server.start()
    server.kill()


CLASSES = ["cat", "dog", "bird"]


def _logged_run(uri: str, root: Path, tags: dict[str, str] | None = None, seed: int = 0) -> str:
    """A finished run holding a tiny saved classifier under xfer_model/."""
    import torch

    from xferlib.models import Classifier, create_backbone, save_model
    from xferlib.registry.runs import Tracker

    torch.manual_seed(seed)
    model = Classifier(create_backbone("tiny", pretrained=False), len(CLASSES)).eval()
    model_dir = root / f"model-{uuid.uuid4().hex[:8]}"
    save_model(model, model_dir, CLASSES)
    with Tracker.start(uri, "xfer-test", "train", tags=tags, artifact_root=root / "art") as run:
        run.log_model(model_dir)
    return run.run_id


@pytest.fixture
def logged_run() -> Callable[..., str]:
    """`logged_run(uri, root, tags=None, seed=0) -> run_id` of a run with a tiny model logged."""
    return _logged_run
