"""The one module that reads environment variables.

Configuration says *what* (params.yaml); the environment says *where*: the work directory, the
MLflow server, the object store, the webhook. Every variable xfer reads is named here, read when
asked (never at import) and returned typed, so `grep XFER_ xferlib/env.py` lists them all. A blank
value counts as unset. The few writes (MLflow's own defaults, restoring what MLflow's fluent API
overwrote) go through `set_default` and `preserved`; `tests/unit/test_architecture.py` fails when
another module of xferlib touches `os.environ` or `os.getenv`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

# Set in every child process and server xfer starts: no telemetry, no update checks, no prompts.
QUIET_ENV: Mapping[str, str] = {
    "DO_NOT_TRACK": "1",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    "DVC_NO_ANALYTICS": "1",
    "DVC_NO_UPDATER": "1",
    "GIT_TERMINAL_PROMPT": "0",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
}
# Quiet defaults the user may override (a debugging session wants Prefect's INFO logs back).
QUIET_DEFAULTS: Mapping[str, str] = {"PREFECT_LOGGING_LEVEL": "WARNING"}


def _get(name: str) -> str | None:
    value = os.environ.get(name, "").strip()
    return value or None


def environ() -> dict[str, str]:
    """A copy of the whole environment (for child processes and for redaction)."""
    return dict(os.environ)


def quiet_environ(**extra: str) -> dict[str, str]:
    """The environment for a child process: QUIET_DEFAULTS, then ours, then QUIET_ENV, then `extra`."""
    return {**QUIET_DEFAULTS, **os.environ, **QUIET_ENV, **extra}


def xfer_home() -> str | None:
    """XFER_HOME: the work directory when --workdir is not given."""
    return _get("XFER_HOME")


def dvc_remote() -> str | None:
    """XFER_DVC_REMOTE: the DVC remote (a folder or s3://bucket/prefix) instead of <workdir>/.dvcstore."""
    return _get("XFER_DVC_REMOTE")


def incident_store() -> str | None:
    """XFER_INCIDENTS: where incidents live (a folder or s3://bucket/prefix every worker reaches)
    instead of <workdir>/incidents."""
    return _get("XFER_INCIDENTS")


def dvc_experiment() -> str | None:
    """DVC_EXP_NAME (or DVC_EXP_BASELINE_REV): the experiment `dvc exp run` is running a stage of
    (DVC commits it on a ref of its own)."""
    return _get("DVC_EXP_NAME") or _get("DVC_EXP_BASELINE_REV")


def mlflow_tracking_uri() -> str | None:
    """MLFLOW_TRACKING_URI: an MLflow server instead of the embedded sqlite store."""
    return _get("MLFLOW_TRACKING_URI")


def prefect_api_url() -> str | None:
    """PREFECT_API_URL: a Prefect server (its UI is this URL without `/api`); unset = none."""
    return _get("PREFECT_API_URL")


def alert_webhook() -> str:
    """XFER_ALERT_WEBHOOK: where alerts are POSTed ('' = stdout and alerts.jsonl only)."""
    return _get("XFER_ALERT_WEBHOOK") or ""


def weights_cache() -> Path | None:
    """XFER_WEIGHTS_CACHE: where downloaded s3:// weights are cached."""
    raw = _get("XFER_WEIGHTS_CACHE")
    return Path(raw) if raw else None


def debug() -> bool:
    """XFER_DEBUG: print tracebacks instead of one-line errors (0/false/no/off, any case, = off)."""
    value = _get("XFER_DEBUG")
    return value is not None and value.lower() not in _FALSE


_FALSE = frozenset({"0", "false", "no", "off"})


def nproc() -> str | None:
    """XFER_TRAIN_NPROC: processes for `xfer train` when --nproc is not given (raw, validated by the caller)."""
    return _get("XFER_TRAIN_NPROC")


def progress() -> bool:
    """XFER_PROGRESS: progress bars on a terminal (default on; 0/false/no/off, any case, = off)."""
    value = _get("XFER_PROGRESS")
    return value is None or value.lower() not in _FALSE


def rank() -> int:
    """RANK (torchrun): this process's global rank, 0 outside torchrun."""
    return int(_get("RANK") or 0)


def local_rank() -> int:
    """LOCAL_RANK (torchrun): this process's rank on its machine, 0 outside torchrun."""
    return int(_get("LOCAL_RANK") or 0)


def s3_endpoint() -> str | None:
    """AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL: an S3-compatible server (MinIO, moto) instead of AWS."""
    return _get("AWS_ENDPOINT_URL_S3") or _get("AWS_ENDPOINT_URL")


def aws_region() -> str:
    return _get("AWS_DEFAULT_REGION") or _get("AWS_REGION") or "us-east-1"


def aws_credentials() -> tuple[str | None, str | None, str | None]:
    """AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN (None = boto3's own lookup)."""
    return _get("AWS_ACCESS_KEY_ID"), _get("AWS_SECRET_ACCESS_KEY"), _get("AWS_SESSION_TOKEN")


def aws_max_attempts() -> str | None:
    """AWS_MAX_ATTEMPTS (raw; storage.py validates it and names the fix)."""
    return _get("AWS_MAX_ATTEMPTS")


# --- writes: only for libraries that read their configuration from the environment ----------


def set_default(name: str, value: str) -> None:
    """Set `name` for this process (and its children) unless the user already set it."""
    os.environ.setdefault(name, value)


@contextmanager
def preserved(*names: str) -> Iterator[None]:
    """Put `names` back as they were (set or unset) after a block that lets a library rewrite them."""
    saved = {name: os.environ.get(name) for name in names}
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
