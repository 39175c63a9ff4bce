"""The orchestrated demo: the loop of xferlib.demo.run, run through Prefect.

A real `prefect server` on 127.0.0.1 (its UI too) and a runner process serving the `retrain`
deployment; the ingest/train/score/monitor flows run from here; a drift verdict emits
`xfer.drift.detected`, the deployment trigger creates the retrain run, and the runner executes it
(never inline). Both processes stop when the demo ends, also on Ctrl-C.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path
from typing import Any

from flows.server import Services, _bin
from xferlib import loop as lifecycle
from xferlib.context import read_json
from xferlib.demo import run as demo
from xferlib.release.gate import GateResult
from xferlib.stages.results import IngestStageResult, TrainStageResult
from xferlib.workdir import Workdir


class PrefectOrchestrator:
    def __init__(self, root: Path, services: Services) -> None:
        from flows import pipeline

        self.wd, self.services, self.p = str(root), services, pipeline
        self._seen: set[Any] = set()  # retrain flow runs already reported
        runner = services.spawn(
            [
                _bin("python"),
                "-m",
                "flows.deploy",
                "serve",
                "--workdir",
                self.wd,
                "--only",
                "retrain",
            ],
            "prefect-runner.log",
        )
        self._wait_for_deployment(runner)

    def _wait_for_deployment(self, runner: Any, timeout: float = 120) -> None:
        from prefect.client.orchestration import get_client

        deadline = time.monotonic() + timeout
        with get_client(sync_client=True) as client:
            while time.monotonic() < deadline:
                if runner.poll() is not None:
                    raise RuntimeError(
                        f"the Prefect runner exited ({runner.returncode}); see {self.services.group.log('prefect-runner')}"
                    )
                try:
                    self.deployment_id = client.read_deployment_by_name("retrain/retrain").id
                    return
                except Exception:
                    time.sleep(1)
        raise TimeoutError("the retrain deployment did not appear within 120 s")

    def ingest(self, src: Path, split: str | None) -> IngestStageResult:
        return self.p.ingest_flow(self.wd, str(src), split=split)

    def train(self) -> TrainStageResult:
        return self.p.train_flow(self.wd)

    def window(self, src: Path, window_id: str, feedback: Path) -> lifecycle.MonitorOutcome:
        """score flow, monitor flow (the lifecycle as tasks), then the deployment's retrain run."""
        self.p.score_flow(self.wd, str(src), window_id)
        out = lifecycle.MonitorOutcome.from_dict(
            self.p.monitor_flow(self.wd, window_id, str(feedback))
        )
        if out.retrained is not None and out.retrained.status == "requested":
            done = self._wait_for_retrain(out.retrained.request_id, window_id)
            out = dataclasses.replace(out, retrained=done)
        return out

    def _wait_for_retrain(
        self, request_id: str, window_id: str, timeout: float = 900
    ) -> lifecycle.RetrainOutcome:
        """Wait for the retrain run the trigger created and the runner executes."""
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
        from prefect.client.schemas.objects import StateType

        deadline = time.monotonic() + timeout
        with get_client(sync_client=True) as client:
            while time.monotonic() < deadline:
                runs = client.read_flow_runs(
                    deployment_filter=DeploymentFilter(
                        id=DeploymentFilterId(any_=[self.deployment_id])
                    )
                )
                done = [
                    r for r in runs if r.id not in self._seen and r.state and r.state.is_final()
                ]
                if done:
                    run = done[0]
                    self._seen.add(run.id)
                    ended = run.state.type if run.state else None
                    if ended != StateType.COMPLETED:
                        state = ended.value if ended else "without a state"
                        error = f"retrain flow run {run.id} ended {state}; see the Prefect UI"
                        return lifecycle.RetrainOutcome(
                            "failed", request_id, error=error, flow_run_id=str(run.id)
                        )
                    wd = Workdir(
                        Path(self.wd)
                    )  # the retrain ran in the runner: gate.json records it
                    gate = read_json(wd.gate_json(wd.retrain_model_dir(f"feedback-{window_id}")))
                    return lifecycle.RetrainOutcome.from_gate(
                        request_id, GateResult.from_dict(gate), str(run.id)
                    )
                time.sleep(1)
        raise TimeoutError("no retrain flow run completed within 15 minutes")


def run(
    workdir: str | None, *, quick: bool = False, keep: bool = False, as_json: bool = False
) -> dict[str, Any]:
    root = Path(workdir or "demo-work").resolve()
    cfg = demo.DemoConfig.quick() if quick else demo.DemoConfig()
    demo.setup_workdir(root, cfg, keep)
    stream = sys.stderr if as_json else sys.stdout
    t = time.monotonic()
    wd = Workdir(root)
    with Services(wd.prefect_home, log_dir=wd.logs) as services:
        print(
            f"Prefect server up at {services.api_url.removesuffix('/api')} ({time.monotonic() - t:.1f}s); UI there while the demo runs",
            file=stream,
            flush=True,
        )
        summary = demo.run(
            str(root),
            quick=quick,
            keep=True,
            as_json=as_json,
            orchestrator=lambda r: PrefectOrchestrator(r, services),
        )
    if as_json:
        summary.update(prefect_api=services.api_url, prefect_port=services.port)
    return summary
