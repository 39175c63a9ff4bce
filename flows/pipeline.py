"""Prefect flows over xferlib.stages: control flow only.

Tasks pass paths and ids, never tensors. Retries only on the I/O tasks (ingest/push, scoring
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

DRIFT_EVENT = "xfer.drift.detected"


@task(retries=3, retry_delay_seconds=[2, 5, 10])
def ingest_task(
    workdir: str, src: str, dataset: str | None = None, split: str | None = None
) -> dict[str, Any]:
    return data.ingest(workdir, src, dataset=dataset, split=split)  # type: ignore[arg-type]


@task
def prepare_task(workdir: str) -> dict[str, Any]:
    return data.prepare(workdir)


@task
def train_task(workdir: str, flow_run_id: str) -> dict[str, Any]:
    from xferlib.stages import distributed  # `xfer train`: $XFER_TRAIN_NPROC processes (torchrun)

    return distributed.train(workdir, tags={"xfer.flow_run_id": flow_run_id})


@task(retries=3, retry_delay_seconds=[2, 5, 10])
def score_task(workdir: str, src: str, window_id: str | None) -> dict[str, Any]:
    return monitor.score(workdir, src, window_id=window_id)


@task
def drift_task(workdir: str, window_id: str | None) -> dict[str, Any]:
    return monitor.drift(workdir, window_id=window_id)


@task
def decide_task(workdir: str, report: dict[str, Any]) -> dict[str, Any]:
    return trigger.decide(workdir, report)


@task
def retrain_task(
    workdir: str, feedback: str, drift_report: str, flow_run_id: str, feedback_id: str
) -> dict[str, Any]:
    from xferlib.stages import training

    return training.retrain(
        workdir,
        feedback,
        drift_report=drift_report,
        flow_run_id=flow_run_id,
        feedback_id=feedback_id,  # type: ignore[arg-type]
    )


@flow(name="ingest")
def ingest_flow(
    workdir: str, src: str, dataset: str | None = None, split: str | None = None
) -> dict[str, Any]:
    return ingest_task(workdir, src, dataset, split)


@flow(name="train")
def train_flow(workdir: str) -> dict[str, Any]:
    """prepare -> fine-tune -> evaluate -> register as challenger -> gate -> promote -> reference."""
    prepare_task(workdir)
    return train_task(workdir, str(flow_run.id or ""))


@flow(name="score")
def score_flow(workdir: str, src: str, window_id: str | None = None) -> dict[str, Any]:
    return score_task(workdir, src, window_id)


class PrefectSteps:
    """The lifecycle's steps (xferlib.loop) as Prefect tasks. A decided retrain is not run inline:
    the drift event starts the `retrain` deployment (one at a time), whose flow runs run_retrain."""

    def __init__(self, workdir: str) -> None:
        self.workdir = workdir

    def score(self, src: str, window_id: str) -> dict[str, Any]:
        return score_task(self.workdir, src, window_id)

    def check(self, window_id: str | None) -> dict[str, Any]:
        return drift_task(self.workdir, window_id)

    def decide(self, report: dict[str, Any]) -> dict[str, Any]:
        return decide_task(self.workdir, report)

    def retrain(self, request: loop.RetrainRequest, flow_run_id: str) -> dict[str, Any]:
        return retrain_task(
            self.workdir,
            request.feedback,
            request.drift_report,
            flow_run_id,
            request.window_id or request.request_id,
        )

    def request_retrain(self, request: loop.RetrainRequest) -> loop.RetrainOutcome:
        name = load_params(Path(self.workdir) / "params.yaml").registry.model_name
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
    workdir: str, window_id: str | None = None, feedback: str | None = None
) -> dict[str, Any]:
    """Drift check on a window -> decide -> request the retrain (an event) when decided."""
    # labelled feedback lands in <workdir>/feedback/incoming unless the caller says where
    fb = feedback or str(Path(workdir) / "feedback" / "incoming")
    return loop.monitor_window(PrefectSteps(workdir), window_id, feedback=fb).to_dict()


@flow(name="retrain")
def retrain_flow(
    workdir: str, feedback: str, report_id: str = "", window_id: str = ""
) -> dict[str, Any]:
    """Warm-start from the champion on feedback + replay; the gate holds on old and new data.

    The lifecycle of xferlib.loop (marker, alerts); a crash fails this flow run after alerting."""
    request = (
        loop.RetrainRequest(workdir, feedback, report_id, report_id, window_id or report_id)
        if report_id
        else loop.RetrainRequest.manual_request(workdir, feedback)
    )
    outcome = loop.run_retrain(PrefectSteps(workdir), request, str(flow_run.id or ""))
    if outcome.status == "failed":
        raise loop.RetrainFailed(outcome)
    return outcome.to_dict()
