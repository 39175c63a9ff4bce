"""Experiment tracking over one MLflow run: params, buffered metrics, artifacts, the model.

With `xferlib.registry*` this is the only place that imports mlflow, and it does so lazily (inside
functions) so that importing xferlib, or `xfer --help`, never pays MLflow's import cost.

Two choices worth knowing:
- Metrics are aggregated per `log_every` steps and written with `log_batch` every `flush_every`
  steps, at `flush()` (epoch end) and on close, by a background thread (`registry.metrics`: why).
- Every MLflow call goes through `registry.client.call_with_retries` (bounded, then
  `TrackingUnavailable` naming the URI), so a dead server never hangs a training run for minutes.
"""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from xferlib.atomic import sha256_file
from xferlib.registry.client import (
    TrackingUnavailable,
    call_with_retries,
    ensure_experiment,
    fluent_target,
    is_remote,
    mlflow_client,
    param,
    run_tag,
)
from xferlib.registry.metrics import MetricBuffer

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "Tracker",
    "TrackingUnavailable",
    "clean_params",
    "run_url",
    "system_info",
]

T = TypeVar("T")

MAX_PARAM_LEN = 6000  # mlflow.utils.validation.MAX_PARAM_VAL_LENGTH
MAX_TAG_LEN = 8000  # MAX_TAG_VAL_LENGTH
MAX_KEY_LEN = 250  # MAX_ENTITY_KEY_LENGTH
SECRET_MARKERS = ("KEY", "SECRET", "TOKEN", "PASSWORD")
REDACTED = "[redacted]"
SHA_TAG = "xfer.weights_sha256"
MODEL_ID_TAG = "xfer.model_id"  # the run's logged MLflow model (`m-<id>`): a version's source


# --- values ----------------------------------------------------------------------------------


def is_secret_key(key: str) -> bool:
    upper = key.upper()
    return any(marker in upper for marker in SECRET_MARKERS)


def clean_params(flat: dict[str, Any]) -> dict[str, str]:
    """Stringify and truncate to MLflow's limits; the values of secret-looking keys never leave."""
    out: dict[str, str] = {}
    for key, value in flat.items():
        text = REDACTED if is_secret_key(str(key)) else str(value)
        out[str(key)[:MAX_KEY_LEN]] = text[:MAX_PARAM_LEN]
    return out


def system_info() -> dict[str, Any]:
    """Where a run ran: device, torch/CUDA versions, python, host CPU count (logged as params)."""
    import torch

    cuda = torch.cuda.is_available()
    return {
        "device": torch.cuda.get_device_name(0) if cuda else "cpu",
        "torch": torch.__version__,
        "cuda": torch.version.cuda or "none",
        "cuda_available": cuda,
        "python": platform.python_version(),
        "cpu_count": os.cpu_count() or 0,
        "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(),
    }


def run_url(tracking_uri: str, run_id: str, experiment_id: str | None = None) -> str:
    """A link to a run for alerts: the UI page on a server, a `runs:/` URI plus the DB otherwise."""
    if is_remote(tracking_uri):
        base = tracking_uri.rstrip("/")
        if experiment_id:
            return f"{base}/#/experiments/{experiment_id}/runs/{run_id}"
        return f"{base}/#/runs/{run_id}"
    return f"runs:/{run_id} in {tracking_uri} (view: mlflow ui --backend-store-uri {tracking_uri})"


def _weights_sha256(model_dir: Path) -> str:
    from xferlib.models.io import META_FILE, MODEL_FILE

    weights = model_dir / MODEL_FILE
    if not weights.is_file():
        raise FileNotFoundError(
            f"{weights} is missing; save the model with xferlib.models.io.save_model first"
        )
    meta = model_dir / META_FILE
    recorded = json.loads(meta.read_text()).get("weights_sha256") if meta.is_file() else None
    return str(recorded) if recorded else sha256_file(weights)


# --- the tracker -----------------------------------------------------------------------------


class Tracker:
    """One MLflow run; use as a context manager so metrics are flushed and the run ended.

    The run ends FINISHED, or FAILED when the `with` block raised.
    """

    def __init__(
        self,
        tracking_uri: str,
        run_id: str,
        experiment_id: str,
        flush_every: int = 100,
        log_every: int = 10,
    ):
        self.tracking_uri = tracking_uri
        self.run_id = run_id
        self.experiment_id = experiment_id
        self._client = mlflow_client(tracking_uri)
        self._metrics = MetricBuffer(self._write_metrics, flush_every, log_every)
        self._closed = False

    @classmethod
    def start(
        cls,
        tracking_uri: str,
        experiment: str,
        run_name: str | None = None,
        tags: dict[str, str] | None = None,
        artifact_root: Path | None = None,
        flush_every: int = 100,
        log_every: int = 10,
    ) -> Tracker:
        """Create (or reuse) the experiment and start a new run in it.

        Metrics: each `log_every` steps become one point (the window mean), sent every
        `flush_every` steps; `log_every=1` records every step (see `registry.metrics`).
        """
        client = mlflow_client(tracking_uri)
        exp_id = ensure_experiment(client, tracking_uri, experiment, artifact_root)
        clean_tags = {k: str(v)[:MAX_TAG_LEN] for k, v in (tags or {}).items()}
        run = call_with_retries(
            tracking_uri,
            "create run",
            lambda: client.create_run(exp_id, run_name=run_name, tags=clean_tags),
        )
        return cls(tracking_uri, run.info.run_id, exp_id, flush_every, log_every)

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        return call_with_retries(self.tracking_uri, what, fn)

    @property
    def url(self) -> str:
        return run_url(self.tracking_uri, self.run_id, self.experiment_id)

    def log_params(self, flat: dict[str, Any]) -> None:
        params = [param(k, v) for k, v in clean_params(flat).items()]
        for i in range(0, len(params), 100):  # MAX_PARAMS_TAGS_PER_BATCH
            chunk = params[i : i + 100]
            self._call("log params", partial(self._client.log_batch, self.run_id, params=chunk))

    def set_tags(self, tags: dict[str, Any]) -> None:
        items = [run_tag(str(k), str(v)[:MAX_TAG_LEN]) for k, v in tags.items()]
        for i in range(0, len(items), 100):
            chunk = items[i : i + 100]
            self._call("set tags", partial(self._client.log_batch, self.run_id, tags=chunk))

    def log_metrics(self, step: int, metrics: dict[str, float]) -> None:
        """Record one step's metrics: aggregated per `log_every` window, written in the background
        every `flush_every` steps (see `registry.metrics`): microseconds, not a database write."""
        self._metrics.add(step, metrics)

    def flush(self, wait: bool = False) -> None:
        """Send buffered metrics now (call at epoch end so the UI is never an epoch behind);
        `wait=True` returns only once they are stored. Raises a failed earlier write's error."""
        self._metrics.flush(wait)

    def _write_metrics(self, batch: list[Any]) -> None:
        self._call("log metrics", lambda: self._client.log_batch(self.run_id, metrics=batch))

    def log_artifact(self, path: Path, subdir: str | None = None) -> None:
        """Log a file, or a directory's contents, under `subdir` of the run's artifacts."""
        path = Path(path)
        if path.is_dir():
            fn = lambda: self._client.log_artifacts(self.run_id, str(path), subdir)  # noqa: E731
        else:
            fn = lambda: self._client.log_artifact(self.run_id, str(path), subdir)  # noqa: E731
        self._call(f"log artifact {path.name}", fn)

    def log_dict(self, data: dict[str, Any], name: str) -> None:
        """Write `data` as JSON/YAML (by `name`'s suffix) into the run's artifacts."""
        self._call(f"log {name}", lambda: self._client.log_dict(self.run_id, data, name))

    def log_model(self, model_dir: Path, input_example: np.ndarray | None = None) -> str:
        """Log the saved model (model.pt + model.json) as this run's MLflow model, then tag the run
        with the weights' sha256 and the logged model's id (what `register_candidate` reads).

        The MLflow model is a pyfunc over xfer's own Predictor (`registry.pyfunc_model`) with
        the saved folder inside it: one copy of the weights, loadable by `mlflow.pyfunc` and
        `mlflow models serve` and by `registry.load_predictor`. `input_example` is uint8
        `(N, H, W, 3)` (a gray image at the model's input size when None). The tags come last,
        so a run carrying them holds a complete model. Returns the sha256: the one `save_model`
        took of the bytes it wrote (model.json's `weights_sha256`), so model.pt is not hashed
        again; a file changed since then no longer matches and is refused at load.
        """
        sha = _weights_sha256(Path(model_dir))
        model_id = self._log_pyfunc(Path(model_dir), sha, input_example)
        self.set_tags({SHA_TAG: sha, MODEL_ID_TAG: model_id})
        return sha

    def _log_pyfunc(self, model_dir: Path, sha: str, example: np.ndarray | None) -> str:
        import mlflow.pyfunc
        import numpy as np
        from mlflow.models import Model

        from xferlib.models.io import read_meta
        from xferlib.registry import pyfunc_model as pm

        meta = read_meta(model_dir)
        if example is None:
            side = int(meta["preprocess"]["image_size"])
            example = np.full((1, side, side, 3), 128, dtype=np.uint8)
        with fluent_target(self.tracking_uri, self.experiment_id):
            info = self._call(
                "log the MLflow model",
                lambda: Model.log(
                    artifact_path=None,
                    name="model",
                    flavor=mlflow.pyfunc,
                    run_id=self.run_id,
                    python_model=str(pm.CODE_FILE),
                    artifacts={pm.ARTIFACT: str(model_dir)},
                    signature=pm.signature(list(meta["class_names"])),
                    input_example=example,
                    pip_requirements=pm.pinned_requirements(),
                    metadata={"xfer": pm.xfer_metadata(meta, sha)},
                    model_config={"weights_sha256": sha},
                ),
            )
        return str(info.model_id)

    def close(self, status: str = "FINISHED") -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._metrics.close()
        finally:
            self._call("end run", lambda: self._client.set_terminated(self.run_id, status))

    def __enter__(self) -> Tracker:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.close("FAILED" if exc_type is not None else "FINISHED")
