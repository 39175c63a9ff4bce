"""MLflow server on a real PostgreSQL backend with S3 artifacts (moto's server), all on 127.0.0.1.

This is the production shape of infra/compose.yaml (there: MinIO instead of moto) run for real:
Debian's PostgreSQL started in a temp dir on a free port, `mlflow server` in front of it, the
artifacts proxied to `s3://<bucket>/mlflow`. A Postgres restart mid-way must not wedge the server.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from xferlib import storage
from xferlib.env import quiet_environ

if TYPE_CHECKING:
    from s3_fixtures import S3Server

pytestmark = pytest.mark.integration
VENV_BIN = Path(__file__).resolve().parents[2] / ".venv" / "bin"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Postgres:
    """A throwaway cluster: run as the `postgres` user when the tests run as root."""

    bin_dir: Path
    base: Path
    port: int
    user: str = "xfer"
    password: str = "pg-" + uuid.uuid4().hex

    @property
    def data(self) -> Path:
        return self.base / "data"

    def url(self, db: str) -> str:
        return f"postgresql://{self.user}:{self.password}@127.0.0.1:{self.port}/{db}"

    def run(self, *args: str, timeout: float = 120) -> str:
        cmd = [str(self.bin_dir / args[0]), *args[1:]]
        if os.geteuid() == 0:  # initdb/postgres refuse to run as root
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=self.base)
        assert proc.returncode == 0, f"{args[0]} failed:\n{proc.stdout}\n{proc.stderr}"
        return proc.stdout

    def pg_ctl(self, action: str, *extra: str) -> None:
        opts = f"-h 127.0.0.1 -p {self.port} -k {self.base} -c fsync=off"
        log = str(self.base / "postgres.log")
        self.run(
            "pg_ctl", "-D", str(self.data), "-l", log, "-w", "-t", "60", "-o", opts, action, *extra
        )


def _start_postgres() -> Postgres:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        pytest.fail("PostgreSQL is not installed; run `make sysdeps` (apt-get install postgresql)")
    base = Path(tempfile.mkdtemp(prefix="xfer-pg-", dir="/tmp"))  # not under root's 0700 tmp
    pg = Postgres(Path(found[-1]).parent, base, _free_port())
    (base / "pwfile").write_text(pg.password + "\n")
    if os.geteuid() == 0:
        shutil.chown(base, "postgres", "postgres")
        shutil.chown(base / "pwfile", "postgres", "postgres")
    pg.run(
        "initdb", "-D", str(pg.data), "-U", pg.user, f"--pwfile={base / 'pwfile'}",
        "--auth-host=scram-sha-256", "--auth-local=trust", "-E", "UTF8", "--no-sync",
    )  # fmt: skip
    pg.pg_ctl("start")
    pg.run("createdb", "-h", str(base), "-p", str(pg.port), "-U", pg.user, "mlflow")
    return pg


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    pg = _start_postgres()
    try:
        yield pg
    finally:
        try:
            pg.run("pg_ctl", "-D", str(pg.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(pg.base, ignore_errors=True)


@dataclass(frozen=True)
class PgMlflow:
    url: str
    bucket: str
    log: Path


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], log: Path, limit_s: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < limit_s:
        if proc.poll() is not None:
            pytest.fail(f"mlflow server exited {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return time.monotonic() - started
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"mlflow server not healthy after {limit_s} s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def pg_mlflow(
    postgres: Postgres, s3_server: S3Server, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PgMlflow]:
    bucket = f"xfer-mlflow-{uuid.uuid4().hex[:8]}"
    with pytest.MonkeyPatch.context() as mp:
        for name, value in s3_server.env().items():
            mp.setenv(name, value)
        storage.create_bucket(bucket)
    port, log = _free_port(), tmp_path_factory.mktemp("mlflow") / "server.log"
    env = quiet_environ(**s3_server.env(), MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")
    cmd = [str(VENV_BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--workers", "1", "--backend-store-uri", postgres.url("mlflow")]
    cmd += ["--artifacts-destination", f"s3://{bucket}/mlflow"]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}"
    try:
        took = _wait_healthy(url, proc, log, limit_s=180)
        print(f"mlflow server on postgres healthy after {took:.1f} s")
        yield PgMlflow(url, bucket, log)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the server and its worker: our own process group
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture
def pg_client(pg_mlflow: PgMlflow, monkeypatch: pytest.MonkeyPatch) -> object:
    from mlflow import MlflowClient

    # Bounded client retries, so a dead backend surfaces as an error in seconds, not minutes.
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
    for name in ("AWS_ENDPOINT_URL", "MLFLOW_S3_ENDPOINT_URL", "AWS_ACCESS_KEY_ID"):
        monkeypatch.delenv(name, raising=False)  # the client reaches S3 only through the server
    return MlflowClient(tracking_uri=pg_mlflow.url, registry_uri=pg_mlflow.url)


def _metric_rows(pg: Postgres, run_id: str, key: str) -> list[float]:
    import psycopg2

    with psycopg2.connect(pg.url("mlflow")) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT value FROM metrics WHERE run_uuid=%s AND key=%s ORDER BY step", (run_id, key)
        )
        return [row[0] for row in cur.fetchall()]


def test_run_metric_artifact_version_and_alias_live_in_postgres_and_s3(
    pg_client, pg_mlflow: PgMlflow, postgres: Postgres, s3_server: S3Server,
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    exp_id = pg_client.create_experiment(f"xfer-it-{uuid.uuid4().hex[:6]}")
    run = pg_client.create_run(exp_id)
    run_id = run.info.run_id
    pg_client.log_metric(run_id, "val_accuracy", 0.875, step=1)
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "model.json").write_text('{"backbone": "tiny"}')
    pg_client.log_artifacts(run_id, str(tmp_path / "model"), artifact_path="model")
    pg_client.set_terminated(run_id)

    assert _metric_rows(postgres, run_id, "val_accuracy") == [0.875]  # really in Postgres
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    stored = storage.list_uris(f"s3://{pg_mlflow.bucket}/mlflow/")
    assert any(uri.endswith(f"{run_id}/artifacts/model/model.json") for uri in stored), stored
    name = f"xfer-it-model-{uuid.uuid4().hex[:6]}"
    pg_client.create_registered_model(name)
    version = pg_client.create_model_version(name, f"{run.info.artifact_uri}/model", run_id=run_id)
    pg_client.set_registered_model_alias(name, "champion", version.version)
    champion = pg_client.get_model_version_by_alias(name, "champion")
    assert str(champion.version) == str(version.version) == "1"
    assert champion.run_id == run_id


def test_logging_recovers_after_a_postgres_restart(pg_client, postgres: Postgres) -> None:
    exp_id = pg_client.create_experiment(f"xfer-restart-{uuid.uuid4().hex[:6]}")
    run_id = pg_client.create_run(exp_id).info.run_id
    pg_client.log_metric(run_id, "loss", 1.0, step=0)
    postgres.pg_ctl("restart", "-m", "fast")  # drops every pooled connection of the server
    started = time.monotonic()
    pg_client.log_metric(run_id, "loss", 0.5, step=1)
    print(f"first call after the restart took {time.monotonic() - started:.2f} s")
    history = [m.value for m in pg_client.get_metric_history(run_id, "loss")]
    assert history == [1.0, 0.5]
    assert _metric_rows(postgres, run_id, "loss") == [1.0, 0.5]


def test_logging_while_postgres_is_down_fails_with_a_clear_error(
    pg_client, postgres: Postgres, pg_mlflow: PgMlflow
) -> None:
    from mlflow.exceptions import MlflowException

    exp_id = pg_client.create_experiment(f"xfer-down-{uuid.uuid4().hex[:6]}")
    run_id = pg_client.create_run(exp_id).info.run_id
    postgres.run("pg_ctl", "-D", str(postgres.data), "-m", "fast", "-w", "stop")
    started = time.monotonic()
    try:
        with pytest.raises(MlflowException) as info:
            pg_client.log_metric(run_id, "loss", 0.1, step=0)
    finally:
        postgres.pg_ctl("start")
    elapsed = time.monotonic() - started
    message, log = str(info.value), pg_mlflow.log.read_text()
    print(f"postgres down: client error after {elapsed:.1f} s: {message[:200]}")
    assert elapsed < 60
    # The pg_client sees the endpoint and a 503 (TEMPORARILY_UNAVAILABLE), retried a bounded
    # number of times; the server log names the database and why.
    assert "runs/log-metric" in message and "503" in message
    assert f'"127.0.0.1", port {postgres.port} failed: Connection refused' in log
    assert postgres.password not in message and postgres.password not in log
    pg_client.log_metric(run_id, "loss", 0.2, step=1)  # and it works again once Postgres is back
    assert [m.value for m in pg_client.get_metric_history(run_id, "loss")] == [0.2]
