"""Deployments: the monitoring schedule, the drift-triggered retrain, and `serve` for local runs.

`python -m flows.deploy serve --workdir W` serves them from this process (a Prefect runner that
polls for their runs); `prefect.yaml` at the repo root declares the same deployments for workers
on the `cpu` and `gpu` work pools (see infra/).
"""

from __future__ import annotations

import argparse
from datetime import timedelta
from pathlib import Path
from typing import Any

from prefect import serve
from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
from prefect.events.schemas.deployment_triggers import DeploymentEventTrigger

from flows.pipeline import DRIFT_EVENT, monitor_flow, retrain_flow, score_flow, train_flow
from xferlib.config import load_params
from xferlib.workdir import Workdir

RETRAIN = "retrain/retrain"


def retrain_trigger(model_name: str = "*") -> DeploymentEventTrigger:
    """Drift event -> a retrain run with the event's payload as parameters."""
    return DeploymentEventTrigger(
        name="drift-triggers-retrain",
        expect={DRIFT_EVENT},
        match={"prefect.resource.id": f"xfer.model.{model_name}"},
        parameters={
            "workdir": "{{ event.payload.workdir }}",
            "feedback": "{{ event.payload.feedback }}",
            "report_id": "{{ event.payload.report_id }}",
            "window_id": "{{ event.payload.window_id }}",
        },
    )


def deployments(workdir: str, only: list[str] | None = None) -> list[Any]:
    """The runner deployments of one work directory (monitor on its schedule, retrain on drift)."""
    params = load_params(Workdir(Path(workdir)).params_file)
    sched: dict[str, Any] = (
        {"cron": params.monitor.cron}
        if params.monitor.cron
        else {"interval": timedelta(minutes=params.monitor.interval_minutes)}
    )
    one_at_a_time = ConcurrencyLimitConfig(
        limit=1, collision_strategy=ConcurrencyLimitStrategy.ENQUEUE
    )
    deps = {
        "retrain": retrain_flow.to_deployment(
            name="retrain",
            triggers=[retrain_trigger()],
            concurrency_limit=one_at_a_time,
            tags=["gpu"],
        ),
        "monitor": monitor_flow.to_deployment(
            name="monitor",
            parameters={"workdir": workdir},
            concurrency_limit=one_at_a_time,
            tags=["cpu"],
            **sched,
        ),
        "score": score_flow.to_deployment(
            name="score", parameters={"workdir": workdir}, tags=["cpu"]
        ),
        "train": train_flow.to_deployment(
            name="train",
            parameters={"workdir": workdir},
            concurrency_limit=one_at_a_time,
            tags=["gpu"],
        ),
    }
    return [d for k, d in deps.items() if not only or k in only]


def serve_all(workdir: str | None, only: list[str] | None = None) -> None:
    """Serve the deployments from this process until interrupted (needs PREFECT_API_URL)."""
    wd = str(Path(workdir or ".").resolve())
    serve(*deployments(wd, only), print_starting_message=False)


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m flows.deploy")
    ap.add_argument("action", choices=["serve"])
    ap.add_argument("--workdir", default=".")
    ap.add_argument("--only", nargs="*", default=None, help="deployment names (default: all)")
    a = ap.parse_args()
    serve_all(a.workdir, a.only)


if __name__ == "__main__":
    main()
