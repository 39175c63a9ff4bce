"""What each stage returns: frozen dataclasses whose `to_dict()` is the stage's `--json` object.

Callers read attributes; only a boundary that holds JSON (the CLI's output, a Prefect event
payload, a torchrun worker's result file, a saved gate.json) converts, once, with `to_dict` /
`from_dict`. The key sets of `to_dict` are the CLI contract that tests and the demo parse.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from xferlib.release.gate import GateResult

if TYPE_CHECKING:  # torch-heavy modules: imported where a result is parsed, not for `xfer init`
    from xferlib.data.ingest import IngestResult
    from xferlib.drift.check import DriftReport
    from xferlib.evaluate import EvalResult
    from xferlib.finetune.train import TrainResult
    from xferlib.registry.audit import AuditRow
    from xferlib.release.watch import WatchResult


@dataclass(frozen=True)
class InitResult:
    workdir: str
    remote: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class IngestStageResult:
    """The library's ingest counts plus what the stage versioned (nothing when none was accepted)."""

    ingest: IngestResult
    dataset: str
    data_version: str | None
    pushed: bool

    def to_dict(self) -> dict[str, Any]:
        extra = {"dataset": self.dataset, "data_version": self.data_version, "pushed": self.pushed}
        return {**self.ingest.to_dict(), **extra}


@dataclass(frozen=True)
class PrepareResult:
    dataset: str
    data_version: str
    classes: int
    counts: dict[str, int]
    warnings: list[str]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Distributed:
    """How a training run was spread over processes (`xfer train --nproc N`)."""

    nproc: int
    backend: str

    def to_dict(self) -> dict[str, Any]:
        return {"nproc": self.nproc, "backend": self.backend}


@dataclass(frozen=True)
class TrainStageResult:
    """The fit, and with `registered` the version and its gate; `data_version` is None only on a
    torchrun rank other than 0 (it writes and registers nothing)."""

    train: TrainResult
    registered: bool
    data_version: str | None = None
    gate: GateResult | None = None
    world_size: int | None = None  # set by a torchrun worker
    distributed: Distributed | None = None  # set by `stages.training.launch`

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"train": self.train.to_dict()}
        if self.data_version is not None:
            out["data_version"] = self.data_version
        out["registered"] = self.registered
        out |= self.gate.to_dict() if self.gate is not None else {}
        if self.world_size is not None:
            out["world_size"] = self.world_size
        if self.distributed is not None:
            out["distributed"] = self.distributed.to_dict()
        return out

    @staticmethod
    def from_dict(raw: dict[str, Any]) -> TrainStageResult:
        """A torchrun worker's result file back into the typed result."""
        from xferlib.finetune.train import TrainResult

        dist = raw.get("distributed")
        return TrainStageResult(
            train=TrainResult(**raw["train"]),
            registered=bool(raw["registered"]),
            data_version=raw.get("data_version"),
            gate=GateResult.from_dict(raw) if raw["registered"] else None,
            world_size=raw.get("world_size"),
            distributed=Distributed(**dist) if dist else None,
        )


@dataclass(frozen=True)
class EvalStageResult:
    eval: EvalResult

    def to_dict(self) -> dict[str, Any]:
        return self.eval.to_dict()


@dataclass(frozen=True)
class RetrainResult:
    feedback_dataset: str
    data_version: str
    parent_version: str
    train: TrainResult
    gate: GateResult

    def to_dict(self) -> dict[str, Any]:
        head: dict[str, Any] = {"feedback_dataset": self.feedback_dataset}
        head |= {"data_version": self.data_version}
        head |= {"parent_version": self.parent_version, "train": self.train.to_dict()}
        return {**head, **self.gate.to_dict()}


@dataclass(frozen=True)
class ScoreResult:
    """One production batch scored into the monitoring log (`window_id` None: nothing was scored,
    every file was quarantined and the counts say why)."""

    model_version: str
    quarantined: dict[str, int]
    rows: int
    window_id: str | None = None
    predicted: dict[str, int] | None = None  # class name -> images predicted as it

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"model_version": self.model_version}
        out |= {"quarantined": self.quarantined, "rows": self.rows}
        if self.window_id is not None:
            out |= {"window_id": self.window_id, "predicted": self.predicted}
        return out


@dataclass(frozen=True)
class DriftResult:
    """The verdict on one window: the report itself, the window it judged, its MLflow run."""

    report: DriftReport
    window_id: str | None
    mlflow_run_id: str | None = None
    watch: WatchResult | None = None  # the champion against its shadow, after a promotion

    @property
    def report_id(self) -> str:
        return self.report.report_id

    def to_dict(self) -> dict[str, Any]:
        out = {**self.report.to_dict(), "window_id": self.window_id}
        if self.watch is not None:
            out["watch"] = self.watch.to_dict()
        return out if self.mlflow_run_id is None else {**out, "mlflow_run_id": self.mlflow_run_id}

    @staticmethod
    def from_dict(raw: dict[str, Any]) -> DriftResult:
        """Parse a drift result that crossed a JSON boundary (CLI output, a saved report)."""
        from xferlib.drift.check import DriftReport
        from xferlib.release.watch import WatchResult

        report = DriftReport.from_dict(raw)
        watched = WatchResult(**raw["watch"]) if raw.get("watch") else None
        return DriftResult(report, raw.get("window_id"), raw.get("mlflow_run_id"), watched)


@dataclass(frozen=True)
class Decision:
    """What the trigger made of a verdict: retrain or not, and why."""

    retrain: bool
    reason: str
    status: str
    model_name: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Prediction:
    image: str
    label: str
    probability: float

    def to_dict(self) -> dict[str, Any]:
        return {"image": self.image, "class": self.label, "probability": self.probability}


@dataclass(frozen=True)
class PredictResult:
    model: str
    version: str
    predictions: list[Prediction]
    quarantined: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        rows = [p.to_dict() for p in self.predictions]
        return {**asdict(self), "predictions": rows}


@dataclass(frozen=True)
class HistoryResult:
    model_name: str
    history: list[AuditRow]

    def to_dict(self) -> dict[str, Any]:
        return {"model_name": self.model_name, "history": [r.to_dict() for r in self.history]}


@dataclass(frozen=True)
class RollbackResult:
    """The audit row of the rollback (`version` rolled back from, `champion_after` restored)."""

    row: AuditRow

    def to_dict(self) -> dict[str, Any]:
        return self.row.to_dict()


@dataclass(frozen=True)
class LineageResult:
    """Where a version came from: its run and the lineage tags (data version, parent, ...)."""

    name: str
    version: str
    run_id: str
    tags: dict[str, str]  # data_version, parent_version, ..., pipeline_rev, dvc_exp

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "run_id": self.run_id, **self.tags}


@dataclass(frozen=True)
class IncidentsResult:
    """`xfer incidents`: every incident in the store, oldest first (each as its stored JSON)."""

    store: str
    incidents: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class LabelRequestResult:
    incident: str
    count: int
    method: str  # kcenter_entropy | random
    folder: str
    tasks_json: str  # Label Studio import
    batch_csv: str  # image_id,path
    candidates: int  # distinct images in the incident's windows
    data_version: str  # DVC version of the request folder ("" outside a DVC repo)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class LabelImportResult:
    """One labels file: every row accepted or quarantined (by reason), nothing dropped."""

    incident: str
    file: str
    rows: int  # = accepted + sum(quarantined)
    accepted: int
    quarantined: dict[str, int]
    labels: dict[str, int]  # accepted labels of the incident so far, per class
    data_version: str  # the accepted-labels dataset after this import
    state: str  # the incident's state after it
    quarantine_log: str
    ready_to_retrain: bool  # accepted labels >= retrain.min_labels

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
