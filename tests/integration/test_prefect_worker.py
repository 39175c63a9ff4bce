"""Issue 6: a deployment on the `cpu` process work pool, picked up by a real `prefect worker` and
run to completion against a real `prefect server`.

The deployment is `flows/pipeline.py:score_flow` deployed from source (the repo checkout), so the
worker's flow-run process loads the flow the way production does. MLflow lives in a sqlite store
outside the work directory whose URI reaches the flow only through the deployment's
`job_variables.env` (the worker itself is started without it), so a completed run with the
window's rows in the monitoring log shows the job variables got through too.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING
from uuid import UUID

import pytest

from flows.server import Services
from tests.flows.conftest import SOURCE_IMAGES, make_workdir, write_window
from xferlib.data.fashion import load_fashion_mnist
from xferlib.env import QUIET_ENV
from xferlib.monitoring import read_window

if TYPE_CHECKING:
    from prefect.client.schemas.objects import FlowRun

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
POOL = "cpu"
WINDOW_ROWS = 60
RUN_TIMEOUT_S = 120.0
PREFECT_BIN = str(Path(sys.executable).with_name("prefect"))  # this venv's CLI, not one on PATH


@contextmanager
def restored_environ() -> Iterator[None]:
    """Put os.environ back as it was (Services exports PREFECT_API_URL/PREFECT_HOME into it)."""
    saved = dict(os.environ)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def create_process_pool(name: str) -> None:
    """A `process` work pool with the process worker's default job template (as the CLI does)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.workers.process import ProcessWorker

    with get_client(sync_client=True) as client:
        client.create_work_pool(
            WorkPoolCreate(
                name=name,
                type="process",
                base_job_template=ProcessWorker.get_default_base_job_template(),
            )
        )


def wait_final(flow_run_id: UUID, timeout: float, worker_log: Path) -> FlowRun:
    """The flow run once its state is final; fails with the worker's log tail on timeout."""
    from prefect.client.orchestration import get_client

    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while True:
            run = client.read_flow_run(flow_run_id)
            if run.state is not None and run.state.is_final():
                return run
            if time.monotonic() > deadline:
                tail = worker_log.read_text(errors="replace")[-3000:]
                pytest.fail(
                    f"flow run {flow_run_id} still {run.state_name} after {timeout:.0f}s; "
                    f"worker log tail:\n{tail}"
                )
            time.sleep(1.0)


def group_gone(pgid: int, timeout: float = 10.0) -> bool:
    """True once no process is left in the process group (server/worker and their children)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.2)
    return False


def test_score_deployment_runs_on_a_process_worker_to_completion(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect import Flow, flow
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.objects import FlowRun
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL, temporary_settings

    x, y = load_fashion_mnist(split="train", limit=SOURCE_IMAGES + WINDOW_ROWS)
    mlflow_uri = f"sqlite:///{tmp_path / 'mlflow-store' / 'mlflow.db'}"
    (tmp_path / "mlflow-store").mkdir()
    with monkeypatch.context() as mp:  # the champion goes into the shared store, then env is clean
        mp.setenv("MLFLOW_TRACKING_URI", mlflow_uri)
        wd = make_workdir(tmp_path / "wd", (x[:SOURCE_IMAGES], y[:SOURCE_IMAGES]))
    assert "MLFLOW_TRACKING_URI" not in os.environ
    window = write_window(tmp_path / "window", x[SOURCE_IMAGES : SOURCE_IMAGES + WINDOW_ROWS])
    window_id = "worker-window"
    assert len(read_window(wd / "monitoring", window_id)) == 0  # nothing scored yet

    monkeypatch.setenv("PREFECT_WORKER_QUERY_SECONDS", "1")  # poll the pool every second
    prefect_env = {k: os.environ.get(k) for k in ("PREFECT_API_URL", "PREFECT_HOME")}
    with restored_environ(), Services(tmp_path / "prefect-home", log_dir=tmp_path) as services:
        server_proc = services.procs[0]
        with temporary_settings(updates={PREFECT_API_URL: services.api_url}):
            create_process_pool(POOL)
            source_flow = flow.from_source(
                source=str(REPO_ROOT), entrypoint="flows/pipeline.py:score_flow"
            )
            assert isinstance(source_flow, Flow)  # sync call: the flow, not a coroutine
            deployment_id = source_flow.deploy(
                name="score",
                work_pool_name=POOL,
                parameters={"workdir": str(wd)},
                job_variables={"env": {"MLFLOW_TRACKING_URI": mlflow_uri, **QUIET_ENV}},
                print_next_steps=False,
                ignore_warnings=True,
            )
            assert isinstance(deployment_id, UUID)
            worker_proc = services.spawn(
                [
                    PREFECT_BIN,
                    "worker",
                    "start",
                    "--pool",
                    POOL,
                    "--type",
                    "process",
                    "--limit",
                    "1",
                ],
                "worker.log",
            )
            started = time.monotonic()
            created = run_deployment(
                name="score/score",
                parameters={"src": str(window), "window_id": window_id},
                timeout=0,
            )
            assert isinstance(created, FlowRun)
            run = wait_final(created.id, RUN_TIMEOUT_S, tmp_path / "worker.log")
            elapsed = time.monotonic() - started
            with get_client(sync_client=True) as client:
                deployment = client.read_deployment(deployment_id)

            assert worker_proc.poll() is None, "the worker exited while the run was in flight"
            assert run.state is not None and run.state.is_completed(), (
                f"flow run ended {run.state_name}: {run.state.message if run.state else ''}; "
                f"see {tmp_path / 'worker.log'}"
            )
            assert run.deployment_id == deployment_id
            assert run.work_pool_name == POOL
            assert run.infrastructure_pid, "no worker-started process recorded for the run"
            assert run.parameters == {
                "workdir": str(wd),
                "src": str(window),
                "window_id": window_id,
            }
            assert deployment.pull_steps == [
                {"prefect.deployments.steps.set_working_directory": {"directory": str(REPO_ROOT)}}
            ]
            print(f"deployment run picked up and completed in {elapsed:.1f}s")

    rows = read_window(wd / "monitoring", window_id)
    assert len(rows) == WINDOW_ROWS
    assert set(rows["window_id"]) == {window_id}
    assert set(rows["model_version"]) == {"1"}  # the champion registered in the shared store

    assert server_proc.poll() is not None and worker_proc.poll() is not None
    assert group_gone(server_proc.pid), "a server process outlived Services.stop()"
    assert group_gone(worker_proc.pid), "a worker (or flow-run) process outlived Services.stop()"
    assert {k: os.environ.get(k) for k in prefect_env} == prefect_env  # Services' exports undone
