"""Tracker behaviour against real MLflow backends (server over HTTP and embedded sqlite)."""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import pytest
import torch

from xferlib.models import Classifier, create_backbone, save_model
from xferlib.registry.client import mlflow_client
from xferlib.registry.runs import Tracker, run_url, system_info

pytestmark = pytest.mark.integration


def test_params_are_stringified_truncated_and_secrets_never_logged(
    tracking_uri: str, tmp_path: Path
) -> None:
    flat = {
        "finetune.lr_head": 0.01,
        "model.weights": None,
        "storage.aws_secret_access_key": "AKIA-very-secret",
        "alerts.webhook_token": "tok-123",
        "db.password": "hunter2",
        "notes": "x" * 7000,
    }
    with Tracker.start(tracking_uri, "xfer-test", "params", artifact_root=tmp_path) as run:
        run.log_params(flat)
    params = mlflow_client(tracking_uri).get_run(run.run_id).data.params
    assert params["finetune.lr_head"] == "0.01" and params["model.weights"] == "None"
    assert len(params["notes"]) == 6000
    logged = " ".join(params.values())
    assert not any(s in logged for s in ("AKIA-very-secret", "tok-123", "hunter2"))
    assert params["db.password"] == "[redacted]"


def test_metrics_are_buffered_and_flushed_in_batches(tracking_uri: str, tmp_path: Path) -> None:
    client = mlflow_client(tracking_uri)
    with Tracker.start(
        tracking_uri, "xfer-test", "metrics", artifact_root=tmp_path, flush_every=50, log_every=1
    ) as run:
        for step in range(49):
            run.log_metrics(step, {"loss": 1.0 / (step + 1), "lr": 0.1})
        assert client.get_metric_history(run.run_id, "loss") == []  # still buffered
        run.log_metrics(49, {"loss": 0.02, "lr": 0.1})  # the 50th step sends the batch
        run.flush(wait=True)  # (written by the background thread: wait for it)
        assert len(client.get_metric_history(run.run_id, "loss")) == 50
        for step in range(50, 70):
            run.log_metrics(step, {"loss": 0.01})
    history = client.get_metric_history(run.run_id, "loss")  # close() flushed the rest
    assert sorted(m.step for m in history) == list(range(70))
    assert client.get_run(run.run_id).info.status == "FINISHED"


def test_metrics_are_recorded_as_window_means_every_log_every_steps(
    tracking_uri: str, tmp_path: Path
) -> None:
    with Tracker.start(
        tracking_uri, "xfer-test", "windows", artifact_root=tmp_path, log_every=10
    ) as run:
        for step in range(25):
            run.log_metrics(step, {"loss": float(step)})
        run.log_metrics(1000, {"val_acc": 0.5})  # an epoch-level metric, flushed at close
    client = mlflow_client(tracking_uri)
    points = sorted((m.step, m.value) for m in client.get_metric_history(run.run_id, "loss"))
    assert points == [(9, 4.5), (19, 14.5), (24, 22.0)]  # means of 0-9, 10-19 and the rest
    assert [(m.step, m.value) for m in client.get_metric_history(run.run_id, "val_acc")] == [
        (1000, 0.5)
    ]


def test_a_failing_block_ends_the_run_failed_with_its_metrics(
    tracking_uri: str, tmp_path: Path
) -> None:
    with pytest.raises(RuntimeError, match="boom"):
        with Tracker.start(tracking_uri, "xfer-test", "fails", artifact_root=tmp_path) as run:
            run.log_metrics(0, {"loss": 1.0})
            raise RuntimeError("boom")
    client = mlflow_client(tracking_uri)
    assert client.get_run(run.run_id).info.status == "FAILED"
    assert len(client.get_metric_history(run.run_id, "loss")) == 1


def test_log_model_logs_one_pyfunc_model_that_predicts_like_the_predictor(
    tracking_uri: str, tmp_path: Path
) -> None:
    import mlflow.artifacts
    import mlflow.pyfunc
    import torchvision
    from mlflow.models import Model

    from xferlib.models.predictor import Predictor

    model = Classifier(create_backbone("tiny", pretrained=False, image_size=16), 3).eval()
    digest = save_model(model, tmp_path / "model", ["a", "b", "c"])
    example = np.random.default_rng(0).integers(0, 256, (2, 24, 24, 3), dtype=np.uint8)
    with Tracker.start(tracking_uri, "xfer-test", "model", artifact_root=tmp_path) as run:
        sha = run.log_model(tmp_path / "model", example)
    assert sha == digest
    client = mlflow_client(tracking_uri)
    tags = client.get_run(run.run_id).data.tags
    assert tags["xfer.weights_sha256"] == digest
    assert client.list_artifacts(run.run_id) == []  # no second copy beside the MLflow model
    logged = client.get_logged_model(tags["xfer.model_id"])
    assert logged.source_run_id == run.run_id
    local = Path(
        mlflow.artifacts.download_artifacts(
            artifact_uri=logged.artifact_location,
            dst_path=str(tmp_path / "dl"),
            tracking_uri=tracking_uri,
        )
    )
    conf = Model.load(str(local))
    assert conf.metadata is not None
    assert conf.metadata["xfer"]["class_names"] == ["a", "b", "c"]
    assert conf.metadata["xfer"]["weights_sha256"] == digest
    assert conf.metadata["xfer"]["preprocess"]["image_size"] == 16
    outputs = conf.get_output_schema()
    assert outputs is not None and outputs.input_names() == [
        "label", "probability", "prob_a", "prob_b", "prob_c"
    ]  # fmt: skip
    reqs = (local / "requirements.txt").read_text().split()
    assert f"torchvision=={torchvision.__version__.split('+')[0]}" in reqs
    assert f"mlflow=={mlflow.__version__}" in reqs and all("==" in r for r in reqs)
    assert (local / "serving_input_example.json").is_file()

    got = mlflow.pyfunc.load_model(str(local)).predict(example)
    want = Predictor.from_classifier(model, ["a", "b", "c"]).predict(
        torch.from_numpy(example).permute(0, 3, 1, 2)
    )
    assert list(got["label"]) == want.labels
    assert np.array_equal(got[["prob_a", "prob_b", "prob_c"]].to_numpy(), want.probs)
    with pytest.raises(Exception, match="uint8"):  # the signature refuses float images
        mlflow.pyfunc.load_model(str(local)).predict(example.astype(np.float32))


def test_system_info_and_run_url() -> None:
    info = system_info()
    assert info["device"] in ("cpu",) or info["cuda_available"]
    assert info["cpu_count"] >= 1 and info["python"].startswith("3.")
    run_id = uuid.uuid4().hex
    assert run_url("http://h:5000/", run_id, "7") == f"http://h:5000/#/experiments/7/runs/{run_id}"
    assert run_url("http://h:5000", run_id).endswith(f"/#/runs/{run_id}")
    assert f"runs:/{run_id}" in run_url("sqlite:////w/mlflow.db", run_id)
