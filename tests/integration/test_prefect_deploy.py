"""Issue 13 item 7: the init step infra/ runs (infra/prefect/init.sh: pools, then
`prefect deploy --all` with the repo's prefect.yaml) against a real `prefect server`.

The deploying environment is the one infra/ gives the init service, plus a poisoned XFER_HOME and
XFER_REPO_URL/XFER_REPO_BRANCH: if a worker's value were resolved on the deploying machine (Prefect
fills `{{ $VAR }}` from the deployer's environment in parameters, job variables *and* pull steps),
those strings would show up in the stored deployments. The pull step is then run the way a worker's flow-run
process runs it, with the worker's environment, and the drift event is fired to see what
parameters the automation hands the retrain.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from flows.server import Services
from tests.integration.test_prefect_worker import restored_environ
from xferlib.env import quiet_environ

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
INIT = REPO_ROOT / "infra" / "prefect" / "init.sh"
PREFECT_BIN = str(Path(sys.executable).with_name("prefect"))
DEPLOY_MACHINE_HOME = "/deploy-machine/xfer-home"
DEPLOY_MACHINE_REPO = "/deploy-machine/xfer-repo"
EXPECTED = {  # deployment -> (pool, schedule interval s, concurrency limit)
    "monitor": ("cpu", 600.0, 1),
    "score": ("cpu", None, None),
    "ingest": ("cpu", None, None),
    "train": ("gpu", None, 1),
    "retrain": ("gpu", None, 1),
}


def _run_init(services: Services, log: Path) -> None:
    env = quiet_environ(
        PREFECT_HOME=str(services.home),
        PREFECT_API_URL=services.api_url,
        PREFECT_BIN=PREFECT_BIN,
        PYTHONPATH=str(REPO_ROOT),  # `prefect deploy` imports flows/pipeline.py
        XFER_HOME=DEPLOY_MACHINE_HOME,
        XFER_REPO_URL=DEPLOY_MACHINE_REPO,
        XFER_REPO_BRANCH="deploy-machine-branch",
    )
    with open(log, "wb") as out:
        done = subprocess.run(["sh", str(INIT)], env=env, stdout=out, stderr=out, timeout=240)
    assert done.returncode == 0, log.read_text(errors="replace")[-3000:]


def _read_all() -> tuple[dict[str, Any], dict[str, Any], list[Any]]:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        pools = {p.name: p for p in client.read_work_pools()}
        deployments = {d.name: d for d in client.read_deployments()}
        automations = client.read_automations()
    return pools, deployments, automations


def _pull_on_a_worker(steps: list[dict[str, Any]], repo: Path, scratch: Path) -> Path:
    """Run the stored pull steps in a fresh process whose environment is a worker's."""
    code = (
        "import asyncio, json, sys\n"
        "from prefect.deployments.steps.core import run_steps\n"
        "out = asyncio.run(run_steps(json.loads(sys.argv[1])))\n"
        "print(json.dumps(out))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("XFER_")}
    env |= {"XFER_REPO_URL": str(repo), "XFER_REPO_BRANCH": "main"}  # no XFER_REPO_TOKEN
    done = subprocess.run(
        [sys.executable, "-c", code, json.dumps(steps)],
        cwd=scratch, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return scratch / json.loads(done.stdout.strip().splitlines()[-1])["directory"]


def _tiny_repo(path: Path) -> Path:
    """A one-commit git repository on branch main (the code a worker clones)."""
    (path / "flows").mkdir(parents=True)
    (path / "flows" / "pipeline.py").write_text("# the worker's checkout\n")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(path)]
    for args in (["init", "-q", "-b", "main"], ["add", "."], ["commit", "-qm", "code"]):
        subprocess.run([*git, *args], check=True, capture_output=True)
    return path


def _fire_drift_event_and_read_the_retrain_run(timeout: float = 30.0) -> dict[str, Any]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName
    from prefect.events import emit_event

    emit_event(
        event="xfer.drift.detected",
        resource={"prefect.resource.id": "xfer.model.xfer-test"},
        payload={
            "workdir": "/cpu-worker/wd",
            "feedback": "feedback/incoming",  # the relative path of issue 13: must not reach it
            "report_id": "report-1",
            "window_id": "window-1",
        },
    )
    deadline = time.monotonic() + timeout
    only_retrain = DeploymentFilter(name=DeploymentFilterName(any_=["retrain"]))
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            runs = client.read_flow_runs(deployment_filter=only_retrain)
            if runs:
                return dict(runs[0].parameters)
            time.sleep(0.5)
    pytest.fail(f"no retrain flow run within {timeout:.0f}s of the drift event")


# slow suite (CI runs it): keeps `make test` under its 15-minute budget
@pytest.mark.slow
def test_init_creates_pools_and_deploys_prefect_yaml_with_nothing_baked_from_the_deployer(
    tmp_path: Path,
) -> None:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    started = time.monotonic()
    with (
        restored_environ(),
        Services(tmp_path / "prefect-home", log_dir=tmp_path) as services,
        # the settings Prefect took from the environment when an earlier test imported it would
        # point the clients below elsewhere: this test's server, explicitly
        temporary_settings(updates={PREFECT_API_URL: services.api_url}),
    ):
        _run_init(services, tmp_path / "init.log")
        pools, deployments, automations = _read_all()

        assert {"cpu", "gpu"} <= set(pools)
        assert pools["cpu"].type == "process" and pools["gpu"].type == "process"
        gpu_env = pools["gpu"].base_job_template["variables"]["properties"]["env"]["default"]
        assert gpu_env["CUDA_VISIBLE_DEVICES"] == "0" and gpu_env["XFER_TRAIN_NPROC"] == "1"

        assert set(deployments) == set(EXPECTED)
        stored = json.dumps({n: d.model_dump(mode="json") for n, d in deployments.items()})
        for leaked in (DEPLOY_MACHINE_HOME, DEPLOY_MACHINE_REPO, "deploy-machine-branch"):
            assert leaked not in stored, f"{leaked!r} was baked into a deployment"
        for name, (pool, interval, limit) in EXPECTED.items():
            dep = deployments[name]
            assert dep.work_pool_name == pool, name
            assert dep.parameters.get("workdir", "absent") is None, (name, dep.parameters)
            assert not dep.job_variables, (name, dep.job_variables)  # the pool owns the env
            got = [s.schedule.interval.total_seconds() for s in dep.schedules]
            assert got == ([interval] if interval else []), (name, got)
            gcl = dep.global_concurrency_limit
            assert (gcl.limit if gcl else None) == limit, name
            if limit:
                assert dep.concurrency_options is not None
                assert dep.concurrency_options.collision_strategy.value == "ENQUEUE"
            [step] = dep.pull_steps
            assert step["prefect.deployments.steps.git_clone"]["repository"] == (
                "{{ $XFER_REPO_URL }}"
            ), "the pull step must be resolved on the worker, not by prefect deploy"

        [automation] = [a for a in automations if a.name.startswith("retrain")]
        assert automation.trigger.expect == {"xfer.drift.detected"}
        [action] = automation.actions
        assert action.deployment_id == deployments["retrain"].id
        assert set(action.parameters) == {"report_id", "window_id"}  # ids only, no paths

        params = _fire_drift_event_and_read_the_retrain_run()
        assert params == {
            "workdir": None,
            "feedback": None,
            "report_id": "report-1",
            "window_id": "window-1",
        }

        scratch = tmp_path / "worker-scratch"
        scratch.mkdir()
        checkout = _pull_on_a_worker(
            deployments["monitor"].pull_steps, _tiny_repo(tmp_path / "code"), scratch
        )
        assert (checkout / "flows" / "pipeline.py").read_text() == "# the worker's checkout\n"
    print(f"server + init + checks in {time.monotonic() - started:.1f}s")
