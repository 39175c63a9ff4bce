"""The orchestrated demo: the loop of xferlib.demo.run, run through Prefect.

A real `prefect server` on 127.0.0.1 (its UI too) and a runner process serving the `retrain`
deployment; the ingest/train/score/monitor flows run from here; a drift verdict emits
`xfer.drift.detected`, the deployment trigger creates the retrain run, and the runner executes it
(never inline). Both processes stop when the demo ends, also on Ctrl-C.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from flows.server import Services, _bin
from xferlib.demo import run as loop
from xferlib.stages.context import Context, read_json
from xferlib.stages.results import (
    GateResult,
    IngestStageResult,
    MonitorResult,
    ScoreResult,
    TrainStageResult,
)


class PrefectOrchestrator:
    def __init__(self, root: Path, services: Services) -> None:
        from flows import pipeline

        self.wd, self.services, self.p = str(root), services, pipeline
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
                        f"the Prefect runner exited ({runner.returncode}); see {self.services.log_dir}/prefect-runner.log"
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

    def score(self, src: Path, window_id: str) -> ScoreResult:
        return self.p.score_flow(self.wd, str(src), window_id)

    def monitor(self, window_id: str, feedback: Path) -> MonitorResult:
        out: MonitorResult = self.p.monitor_flow(self.wd, window_id, str(feedback))
        if not out.decision.retrain:
            return out
        run_id = self._wait_for_retrain()
        wd = Context.load(self.wd).wd  # the retrain ran in the runner: its gate.json is the record
        gate = read_json(wd.gate_json(wd.retrain_model_dir(f"feedback-{window_id}")))
        return MonitorResult(out.report, out.decision, GateResult.from_dict(gate), run_id)

    def _wait_for_retrain(self, timeout: float = 900) -> str:
        """Wait for the retrain run the trigger created and the runner executes."""
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
        from prefect.client.schemas.objects import StateType

        seen = getattr(self, "_seen", set())
        deadline = time.monotonic() + timeout
        with get_client(sync_client=True) as client:
            while time.monotonic() < deadline:
                runs = client.read_flow_runs(
                    deployment_filter=DeploymentFilter(
                        id=DeploymentFilterId(any_=[self.deployment_id])
                    )
                )
                new = [r for r in runs if r.id not in seen]
                done = [r for r in new if r.state and r.state.is_final()]
                if done:
                    run = done[0]
                    seen.add(run.id)
                    self._seen = seen
                    if run.state.type != StateType.COMPLETED:
                        raise RuntimeError(
                            f"retrain flow run {run.id} ended {run.state.type.value}; see the Prefect UI"
                        )
                    return str(run.id)
                time.sleep(1)
        raise TimeoutError("no retrain flow run completed within 15 minutes")


def run(
    workdir: str | None, *, quick: bool = False, keep: bool = False, as_json: bool = False
) -> dict[str, Any]:
    root = Path(workdir or "demo-work").resolve()
    cfg = loop.DemoConfig.quick() if quick else loop.DemoConfig()
    loop.setup_workdir(root, cfg, keep)
    stream = sys.stderr if as_json else sys.stdout
    t = time.monotonic()
    with Services(root / "prefect", log_dir=root / "logs") as services:
        print(
            f"Prefect server up at {services.api_url.removesuffix('/api')} ({time.monotonic() - t:.1f}s); UI there while the demo runs",
            file=stream,
            flush=True,
        )
        summary = loop.run(
            str(root),
            quick=quick,
            keep=True,
            as_json=as_json,
            orchestrator=lambda r: PrefectOrchestrator(r, services),
        )
    if as_json:
        summary.update(prefect_api=services.api_url, prefect_port=services.port)
    return summary
