"""Prefect flows over xferlib.stages: control flow only.

Tasks pass paths and ids, never tensors, and return the stages' typed results (small frozen
dataclasses); the flows read their attributes. Retries only on the I/O tasks (ingest/push, scoring
into the log); training and gating are not retried blindly (a failed gate must be looked at).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.events import emit_event
from prefect.runtime import flow_run

from xferlib import loop
from xferlib.config import load_params
from xferlib.stages import data, monitor, trigger
from xferlib.stages.results import (
    Decision,
    DriftResult,
    IngestStageResult,
    PrepareResult,
    RetrainResult,
    ScoreResult,
    TrainStageResult,
)
from xferlib.workdir import Workdir

DRIFT_EVENT = "xfer.drift.detected"


@task(retries=3, retry_delay_seconds=[2, 5, 10])
def ingest_task(
    workdir: str, src: str, dataset: str | None = None, split: str | None = None
) -> IngestStageResult:
    return data.ingest(workdir, Path(src), dataset=dataset, split=split)


@task
def prepare_task(workdir: str) -> PrepareResult:
    return data.prepare(workdir)


@task
def train_task(workdir: str, flow_run_id: str) -> TrainStageResult:
    from xferlib.stages import training  # `xfer train`: $XFER_TRAIN_NPROC processes (torchrun)

    return training.train(workdir, tags={"xfer.flow_run_id": flow_run_id})


@task(retries=3, retry_delay_seconds=[2, 5, 10])
def score_task(workdir: str, src: str, window_id: str | None) -> ScoreResult:
    return monitor.score(workdir, src, window_id=window_id)


@task
def drift_task(workdir: str, window_id: str | None) -> DriftResult:
    return monitor.drift(workdir, window_id=window_id)


@task
def decide_task(workdir: str, report: DriftResult) -> Decision:
    return trigger.decide(workdir, report)


@task
def retrain_task(
    workdir: str, feedback: str, drift_report: str, flow_run_id: str, feedback_id: str
) -> RetrainResult:
    from xferlib.stages import retrain

    return retrain.retrain(
        workdir,
        Path(feedback),
        drift_report=drift_report,
        flow_run_id=flow_run_id,
        feedback_id=feedback_id,
    )


def _here(workdir: str | None) -> str:
    """The work directory on the machine running this flow run: the parameter, else this worker's
    XFER_HOME (else its cwd), as an absolute path. Deployments pass None (prefect.yaml), so the
    value is resolved on the worker at run time, never on the machine that ran `prefect deploy`."""
    return str(Workdir.resolve(workdir).root)


@flow(name="ingest")
def ingest_flow(
    workdir: str | None, src: str, dataset: str | None = None, split: str | None = None
) -> IngestStageResult:
    return ingest_task(_here(workdir), src, dataset, split)


@flow(name="train")
def train_flow(workdir: str | None = None) -> TrainStageResult:
    """prepare -> fine-tune -> evaluate -> register as challenger -> gate -> promote -> reference."""
    wd = _here(workdir)
    prepare_task(wd)
    return train_task(wd, str(flow_run.id or ""))


@flow(name="score")
def score_flow(workdir: str | None, src: str, window_id: str | None = None) -> ScoreResult:
    return score_task(_here(workdir), src, window_id)


class PrefectSteps:
    """The lifecycle's steps (xferlib.loop) as Prefect tasks. A decided retrain is not run inline:
    the drift event starts the `retrain` deployment (one at a time), whose flow runs run_retrain."""

    def __init__(self, workdir: str) -> None:
        self.workdir = workdir

    def score(self, src: str, window_id: str) -> ScoreResult:
        return score_task(self.workdir, src, window_id)

    def check(self, window_id: str | None) -> DriftResult:
        return drift_task(self.workdir, window_id)

    def decide(self, report: DriftResult) -> Decision:
        return decide_task(self.workdir, report)

    def retrain(self, request: loop.RetrainRequest, flow_run_id: str) -> RetrainResult:
        return retrain_task(
            self.workdir,
            request.feedback,
            request.drift_report,
            flow_run_id,
            request.window_id or request.request_id,
        )

    def request_retrain(self, request: loop.RetrainRequest) -> loop.RetrainOutcome:
        name = load_params(Workdir(Path(self.workdir)).params_file).registry.model_name
        emit_event(
            event=DRIFT_EVENT,
            resource={"prefect.resource.id": f"xfer.model.{name}"},
            payload={
                "workdir": self.workdir,
                "report_id": request.request_id,
                "window_id": request.window_id,
                "feedback": request.feedback,
            },
        )
        get_run_logger().warning("drift: retraining requested for %s", request.request_id)
        return loop.RetrainOutcome("requested", request.request_id)


@flow(name="monitor")
def monitor_flow(
    workdir: str | None = None, window_id: str | None = None, feedback: str | None = None
) -> dict[str, Any]:
    """Drift check on a window -> decide -> request the retrain (an event) when decided."""
    wd = _here(workdir)
    # labelled feedback lands in <workdir>/feedback/incoming unless the caller says where
    fb = feedback or str(Workdir(Path(wd)).feedback_incoming)
    return loop.monitor_window(PrefectSteps(wd), window_id, feedback=fb).to_dict()


@flow(name="retrain")
def retrain_flow(
    workdir: str | None = None,
    feedback: str | None = None,
    report_id: str = "",
    window_id: str = "",
) -> dict[str, Any]:
    """Warm-start from the champion on feedback + replay; the gate holds on old and new data.

    The lifecycle of xferlib.loop (marker, alerts); a crash fails this flow run after alerting.
    Without `feedback`, the labels are this work directory's feedback/incoming (the deployed
    retrain gets only the drift event's ids, never the monitor's paths)."""
    workdir = _here(workdir)
    feedback = feedback or str(Workdir(Path(workdir)).feedback_incoming)
    request = (
        loop.RetrainRequest(workdir, feedback, report_id, report_id, window_id or report_id)
        if report_id
        else loop.RetrainRequest.manual_request(workdir, feedback)
    )
    outcome = loop.run_retrain(PrefectSteps(workdir), request, str(flow_run.id or ""))
    if outcome.status == "failed":
        raise loop.RetrainFailed(outcome)
    return outcome.to_dict()


@flow(name="labels-arrived")
def labels_arrived_flow(workdir: str, incident: str) -> dict[str, Any] | None:
    """An import brought an incident to retrain.min_labels: request its retrain (the drift event
    the `retrain` deployment's trigger answers), once per crossing (xferlib.loop.labels_arrived)."""
    outcome = loop.labels_arrived(PrefectSteps(workdir), incident)
    return outcome.to_dict() if outcome else None
