"""Every stage result's `to_dict()` is the `--json` object the CLI printed before results were
typed (same keys, JSON-able), and the types parsed at JSON boundaries come back equal."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from xferlib.data.ingest import IngestResult
from xferlib.drift import DriftReport
from xferlib.drift import TestResult as DriftTest
from xferlib.evaluate import EvalResult
from xferlib.finetune import TrainResult
from xferlib.registry import AuditRow, CandidateMetrics, PromotionDecision
from xferlib.release.gate import GateResult
from xferlib.stages import results as r

TRAIN = TrainResult(
    2, 1, 0.8, [{"epoch": 0, "val_accuracy": 0.8}], 1.5, "cpu", "fp32", 100.0, "full"
)
DECISION = PromotionDecision(
    "promote", ["new: +0.1"], CandidateMetrics("2", 0.9, 0.8), CandidateMetrics("1", 0.5, 0.81),
    0.01, 0.02, 0.1,
)  # fmt: skip
GATE = GateResult("m", "2", "run-2", DECISION, {"new": 0.9, "holdout": 0.8},
                    {"new": 0.5, "holdout": 0.81}, "/w/references/m/v2")  # fmt: skip
GATE_KEYS = {"model_name", "version", "run_id", "decision", "accuracy", "champion_accuracy",
             "reference"}  # fmt: skip
REPORT = DriftReport(
    True, "drift", 200, 1000, "1", {"pred_chi2": DriftTest(30.0, 0.001, 0.01, True)}, ["pred"],
    report_html="/w/reports/x/drift-abc.evidently.html", report_json="/w/reports/x/drift-abc.json",
    report_id="abc",
)  # fmt: skip
DRIFT_KEYS = {f.name for f in dataclasses.fields(DriftReport)}
ROW = AuditRow("m", "2", "rolled_back", "2", "1", "worse", "d-1", 1_700_000_000_000_000_000, "a")
ROW_KEYS = {f.name for f in dataclasses.fields(AuditRow)} | {"timestamp"}
INGEST = IngestResult(5, 1, {"corrupt": 1}, 7, "/w/data/source", ("w",), 0.5)
INGEST_KEYS = {"accepted", "duplicates", "quarantined", "total", "dataset_dir", "warnings",
               "seconds", "dataset", "data_version", "pushed"}  # fmt: skip
EVAL = EvalResult(0.9, 0.88, 0.03, 10, ["a", "b"], {"a": {"f1": 0.9}}, [[5, 0], [1, 4]])
TRAIN_KEYS = {"train", "data_version", "registered"}

CASES: list[tuple[str, Any, set[str]]] = [
    ("init", r.InitResult("/w", "/w/.dvcstore"), {"workdir", "remote"}),
    ("ingest", r.IngestStageResult(INGEST, "source", "md5:x.dir", True), INGEST_KEYS),
    ("ingest-nothing", r.IngestStageResult(INGEST, "source", None, False), INGEST_KEYS),
    ("prepare", r.PrepareResult("source", "md5:x", 2, {"train": 8, "val": 1, "test": 1}, []),
     {"dataset", "data_version", "classes", "counts", "warnings"}),
    ("train-registered", r.TrainStageResult(TRAIN, True, "md5:x", GATE), TRAIN_KEYS | GATE_KEYS),
    ("train-unregistered", r.TrainStageResult(TRAIN, False, "md5:x"), TRAIN_KEYS),
    ("train-other-rank", r.TrainStageResult(TRAIN, False), {"train", "registered"}),
    ("train-ddp", r.TrainStageResult(TRAIN, False, "md5:x", world_size=2,
                                     distributed=r.Distributed(2, "gloo")),
     TRAIN_KEYS | {"world_size", "distributed"}),
    ("evaluate", r.EvalStageResult(EVAL),
     {"accuracy", "macro_f1", "ece", "n", "class_names", "per_class", "confusion"}),
    ("retrain", r.RetrainResult("feedback-w3", "md5:a+md5:b", "1", TRAIN, GATE),
     {"feedback_dataset", "data_version", "parent_version", "train"} | GATE_KEYS),
    ("score", r.ScoreResult("1", {}, 3, "w1", {"Coat": 3}),
     {"model_version", "quarantined", "rows", "window_id", "predicted"}),
    ("score-all-quarantined", r.ScoreResult("1", {"corrupt": 2}, 0),
     {"model_version", "quarantined", "rows"}),
    ("drift", r.DriftResult(REPORT, "w1", "run-9"), DRIFT_KEYS | {"window_id", "mlflow_run_id"}),
    ("decision", r.Decision(True, "2 windows in a row", "drift", "m"),
     {"retrain", "reason", "status", "model_name"}),
    ("predict", r.PredictResult("models:/m@champion", "1", [r.Prediction("a.png", "Coat", 0.9)], {}),
     {"model", "version", "predictions", "quarantined"}),
    ("history", r.HistoryResult("m", [ROW]), {"model_name", "history"}),
    ("rollback", r.RollbackResult(ROW), ROW_KEYS),
    ("lineage", r.LineageResult("m", "2", "run-2", {"data_version": "md5:x", "parent_version": "1",
                                                    "drift_report": "", "flow_run_id": "",
                                                    "pipeline_rev": "", "dvc_exp": ""}),
     {"name", "version", "run_id", "data_version", "parent_version", "drift_report", "flow_run_id",
      "pipeline_rev", "dvc_exp"}),
]  # fmt: skip


@pytest.mark.parametrize(("case", "result", "keys"), CASES, ids=[c[0] for c in CASES])
def test_to_dict_has_the_cli_keys_and_is_json(case: str, result: Any, keys: set[str]) -> None:
    out = result.to_dict()
    assert set(out) == keys
    assert json.loads(json.dumps(out)) == out  # plain JSON types only: what --json prints


def test_results_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        GATE.version = "3"  # type: ignore[misc]


def test_nested_objects_serialise_as_the_old_dicts() -> None:
    assert GATE.to_dict()["decision"]["challenger"] == {
        "version": "2", "new_metric": 0.9, "holdout_metric": 0.8,
    }  # fmt: skip
    assert r.PredictResult("u", "1", [r.Prediction("a.png", "Coat", 0.9)], {}).to_dict()[
        "predictions"
    ] == [{"image": "a.png", "class": "Coat", "probability": 0.9}]
    drift = r.DriftResult(REPORT, "w1").to_dict()
    assert drift["tests"]["pred_chi2"] == {"statistic": 30.0, "p_value": 0.001, "threshold": 0.01,
                                           "drift": True}  # fmt: skip
    assert "mlflow_run_id" not in drift  # the saved report JSON is written before the run exists
    assert r.Distributed(2, "gloo").to_dict() == {"nproc": 2, "backend": "gloo"}


@pytest.mark.parametrize(
    "result",
    [
        r.DriftResult(REPORT, "w1", "run-9"),
        r.DriftResult(dataclasses.replace(REPORT, tests={}, status="insufficient_data"), None),
        GATE,
        dataclasses.replace(GATE, champion_accuracy=None,
                            decision=dataclasses.replace(DECISION, champion=None)),
        r.TrainStageResult(TRAIN, True, "md5:x", GATE, world_size=2),
        r.TrainStageResult(TRAIN, False, "md5:x", distributed=r.Distributed(2, "gloo")),
    ],
    ids=["drift", "drift-insufficient", "gate", "gate-first", "train", "train-ddp"],
)  # fmt: skip
def test_from_dict_parses_what_to_dict_wrote(result: Any) -> None:
    raw = json.loads(json.dumps(result.to_dict()))  # through JSON, as a boundary sees it
    assert type(result).from_dict(raw) == result
