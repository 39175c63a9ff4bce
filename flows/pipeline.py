"""Prefect flows over xferlib.stages: control flow only.

Tasks pass paths and ids, never tensors, and return the stages' typed results (small frozen
dataclasses); the flows read their attributes. Retries only on the I/O tasks (ingest/push, scoring
into the log); training and gating are not retried blindly (a failed gate must be looked at).
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.events import emit_event
from prefect.runtime import flow_run

from xferlib.stages import data, monitor, trigger
from xferlib.stages.results import (
    Decision,
    DriftResult,
    IngestStageResult,
    MonitorResult,
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
    from xferlib.stages import distributed  # `xfer train`: $XFER_TRAIN_NPROC processes (torchrun)

    return distributed.train(workdir, tags={"xfer.flow_run_id": flow_run_id})


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


@flow(name="ingest")
def ingest_flow(
    workdir: str, src: str, dataset: str | None = None, split: str | None = None
) -> IngestStageResult:
    return ingest_task(workdir, src, dataset, split)


@flow(name="train")
def train_flow(workdir: str) -> TrainStageResult:
    """prepare -> fine-tune -> evaluate -> register as challenger -> gate -> promote -> reference."""
    prepare_task(workdir)
    return train_task(workdir, str(flow_run.id or ""))


@flow(name="score")
def score_flow(workdir: str, src: str, window_id: str | None = None) -> ScoreResult:
    return score_task(workdir, src, window_id)


@flow(name="monitor")
def monitor_flow(
    workdir: str, window_id: str | None = None, feedback: str | None = None
) -> MonitorResult:
    """Drift check on the latest window -> alert -> trigger retraining (via an event)."""
    report = drift_task(workdir, window_id)
    decision = decide_task(workdir, report)
    if decision.retrain:
        emit_event(
            event=DRIFT_EVENT,
            resource={"prefect.resource.id": f"xfer.model.{decision.model_name}"},
            payload={
                "workdir": workdir,
                "report_id": report.report_id,
                "window_id": report.window_id or "",
                "model_version": report.report.reference_version,
                # labelled feedback lands in <workdir>/feedback/incoming unless the caller says where
                "feedback": feedback or str(Workdir(Path(workdir)).feedback_incoming),
            },
        )
        get_run_logger().warning("drift: retraining requested for %s", report.report_id)
    return MonitorResult(report, decision)


@flow(name="retrain")
def retrain_flow(
    workdir: str, feedback: str, report_id: str = "", window_id: str = ""
) -> RetrainResult:
    """Warm-start from the champion on feedback + replay; the gate holds on old and new data."""
    run_id = str(flow_run.id or "")
    trigger.retrain_started(workdir, report_id, run_id)
    try:
        result = retrain_task(workdir, feedback, report_id, run_id, window_id or report_id)
    except Exception as exc:
        trigger.retrain_finished(workdir, report_id, run_id, error=str(exc))
        raise
    trigger.retrain_finished(workdir, report_id, run_id, result=result.gate)
    return result
