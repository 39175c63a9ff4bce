"""Where the embedded defaults live inside a work directory (`--workdir`, `XFER_HOME` or cwd).

Nothing is created at import; `Workdir.ensure()` makes the folders when a stage needs them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from xferlib import env


@dataclass(frozen=True)
class Workdir:
    root: Path

    @staticmethod
    def resolve(path: str | os.PathLike[str] | None = None) -> Workdir:
        raw = path or env.xfer_home() or os.getcwd()
        return Workdir(Path(raw).expanduser().resolve())

    # --- data (tracked by DVC) ---
    def dataset(self, name: str) -> Path:
        return self.data / name

    @property
    def quarantine(self) -> Path:
        return self.root / "quarantine"

    @property
    def dvc_remote(self) -> str:
        """The DVC remote used when none is configured: XFER_DVC_REMOTE, else `<root>/.dvcstore`.

        A string, not a Path: `Path("s3://b/p")` collapses the URL to `s3:/b/p`."""
        return env.dvc_remote() or str(self.root / ".dvcstore")

    # --- pipeline outputs (dvc.yaml stages) ---
    @property
    def prepared(self) -> Path:
        return self.root / "prepared"

    @property
    def model_dir(self) -> Path:
        return self.root / "model"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics"

    @property
    def plots(self) -> Path:
        return self.root / "plots"

    @property
    def cache(self) -> Path:
        return self.root / ".xfer-cache"

    @property
    def train_json(self) -> Path:
        return self.model_dir / "train.json"

    @property
    def eval_json(self) -> Path:
        return self.metrics / "eval.json"

    @property
    def feature_cache(self) -> Path:
        return self.cache / "features"

    # --- retraining: one feedback dataset -> its own splits and model directory ---
    @property
    def feedback_incoming(self) -> Path:
        """Where labelled feedback lands unless a caller names another folder."""
        return self.root / "feedback" / "incoming"

    def prepared_feedback(self, dataset: str) -> Path:
        return self.root / "prepared-feedback" / dataset

    def retrain_model_dir(self, dataset: str) -> Path:
        """The model a retrain on feedback `dataset` saved (model.pt, eval/, gate.json)."""
        return self.root / "models" / dataset

    @staticmethod
    def gate_json(model_dir: Path) -> Path:
        return model_dir / "gate.json"

    # --- operations ---
    @property
    def monitoring(self) -> Path:
        return self.root / "monitoring"

    @property
    def incidents(self) -> str:
        """The incident store: XFER_INCIDENTS (a folder or s3:// prefix shared by every worker),
        else `<root>/incidents`. A string: `Path("s3://b/p")` would collapse the URL."""
        return env.incident_store() or str(self.root / "incidents")

    def labels(self, incident_id: str) -> Path:
        """An incident's label work: request/ (the batch to label), dataset/ (accepted labels as an
        ImageFolder, DVC-tracked: what `xfer retrain --feedback` reads), imports/ (each file as given)."""
        return self.root / "labels" / incident_id

    @property
    def references(self) -> Path:
        return self.root / "references"

    def reference(self, name: str, version: str) -> Path:
        """The drift reference stored with version `version` of model `name`."""
        return self.references / name / f"v{version}"

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    @property
    def evidently_workspace(self) -> Path:
        """The local Evidently workspace: one project per model name, one snapshot per window."""
        return self.root / "evidently"

    @property
    def alerts(self) -> Path:
        return self.root / "alerts.jsonl"

    @property
    def state(self) -> Path:
        """Small JSON state files (retrain cool-down, drift streaks)."""
        return self.root / "state"

    @property
    def trigger_state(self) -> Path:
        """The trigger's streak, cool-down and in-flight marker (read-modified under trigger_lock)."""
        return self.state / "trigger.json"

    @property
    def trigger_lock(self) -> Path:
        return self.state / "trigger.lock"

    @property
    def data(self) -> Path:
        """Where every dataset lives (`data/<dataset>/`)."""
        return self.root / "data"

    @property
    def dvc_dir(self) -> Path:
        return self.root / ".dvc"

    @property
    def logs(self) -> Path:
        """Logs of the servers a command starts (the demo's Prefect server and runner)."""
        return self.root / "logs"

    @property
    def prefect_home(self) -> Path:
        """PREFECT_HOME of the Prefect server the demo starts."""
        return self.root / "prefect"

    @property
    def demo_incoming(self) -> Path:
        """The demo's world: source domain, production windows, labelled feedback."""
        return self.root / "incoming"

    @property
    def demo_summary(self) -> Path:
        return self.root / "demo-summary.json"

    @staticmethod
    def eval_dir(model_dir: Path) -> Path:
        """Evaluation results (per set, plots) of the model saved in `model_dir`."""
        return model_dir / "eval"

    @staticmethod
    def learning_curves(model_dir: Path) -> Path:
        """Training loss and validation accuracy per epoch of the model in `model_dir` (PNG)."""
        return model_dir / "learning_curves.png"

    @property
    def params_file(self) -> Path:
        return self.root / "params.yaml"

    @property
    def dvc_yaml(self) -> Path:
        return self.root / "dvc.yaml"

    @property
    def dvc_lock(self) -> Path:
        return self.root / "dvc.lock"

    @property
    def gitignore(self) -> Path:
        return self.root / ".gitignore"

    @property
    def pipeline_files(self) -> tuple[Path, ...]:
        """What git holds of the pipeline: its definition, parameters, lock, and the metrics and
        plots DVC keeps out of its cache (`cache: false`); DVC's own outs are in `dvc.lock`."""
        return (
            self.params_file, self.dvc_yaml, self.dvc_lock, self.gitignore, self.metrics, self.plots
        )  # fmt: skip

    @property
    def mlflow_uri(self) -> str:
        return env.mlflow_tracking_uri() or f"sqlite:///{self.mlflow_db}"

    @property
    def mlflow_db(self) -> Path:
        """The embedded MLflow store (used unless MLFLOW_TRACKING_URI names a server)."""
        return self.root / "mlflow.db"

    @property
    def mlflow_artifacts(self) -> Path:
        return self.root / "mlartifacts"

    def ensure(self) -> Workdir:
        self.root.mkdir(parents=True, exist_ok=True)
        return self
