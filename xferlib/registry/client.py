"""The MLflow client shared by `xferlib.registry.runs` and `xferlib.registry`, with bounded retries.

Every MLflow call goes through `call_with_retries`: a few attempts with exponential backoff
(0.5 -> 4 s) on connection errors, timeouts, 5xx and a locked sqlite file, then
`TrackingUnavailable` naming the URI and the fix. MLflow's own HTTP retries (7 by default, about
4 minutes of backoff) are turned down, so a dead server is reported within seconds.
mlflow is imported inside functions: importing this module costs nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar
from urllib.parse import unquote, urlparse

from xferlib import env

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param, RunTag

T = TypeVar("T")

ATTEMPTS = 4
FIRST_DELAY_S = 0.5
MAX_DELAY_S = 4.0


def metric(key: str, value: float, timestamp_ms: int, step: int) -> Metric:
    """An MLflow `Metric` entity for `log_batch` (built here: this module is the SDK's adapter)."""
    from mlflow.entities import Metric

    return Metric(key, value, timestamp_ms, step)


def param(key: str, value: str) -> Param:
    from mlflow.entities import Param

    return Param(key, value)


def run_tag(key: str, value: str) -> RunTag:
    from mlflow.entities import RunTag

    return RunTag(key, value)


class TrackingUnavailable(RuntimeError):
    """MLflow could not be reached after bounded retries; the message names the URI and the fix."""


def is_remote(tracking_uri: str) -> bool:
    return tracking_uri.startswith(("http://", "https://"))


def _is_transient(exc: BaseException, remote: bool) -> bool:
    """Connection errors, timeouts, 5xx and a locked sqlite file are worth another attempt."""
    msg = str(exc)
    if "database is locked" in msg:
        return True
    if isinstance(exc, ConnectionError | TimeoutError):
        return True
    name = type(exc).__name__
    if name in (
        "ConnectionError",
        "Timeout",
        "ReadTimeout",
        "ConnectTimeout",
        "ChunkedEncodingError",
    ):
        return True
    if not remote or not hasattr(exc, "get_http_status_code"):
        return False
    if "failed with exception" in msg:  # MLflow's wrapper of a requests-level failure
        return True
    return int(exc.get_http_status_code()) >= 500


def call_with_retries(tracking_uri: str, what: str, fn: Callable[[], T]) -> T:
    """Run `fn` with bounded retries; transient failures end in `TrackingUnavailable`.

    Non-transient MLflow errors (a missing version, a bad name) are raised unchanged at once.
    """
    remote = is_remote(tracking_uri)
    delay = FIRST_DELAY_S
    for attempt in range(1, ATTEMPTS + 1):
        try:
            return fn()
        except Exception as exc:
            if not _is_transient(exc, remote):
                raise
            if attempt == ATTEMPTS:
                cause = (str(exc).splitlines() or [type(exc).__name__])[0][:200]
                raise TrackingUnavailable(
                    f"MLflow at {tracking_uri} unreachable after {ATTEMPTS} attempts ({what}: {cause}); "
                    "start the tracking server or point MLFLOW_TRACKING_URI at a running one"
                ) from exc
            time.sleep(delay)
            delay = min(delay * 2, MAX_DELAY_S)
    raise AssertionError("unreachable")


# defaults only: a user's own MLFLOW_HTTP_REQUEST_* settings win
_MLFLOW_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
    **{k: v for k, v in env.QUIET_ENV.items() if k.startswith("MLFLOW_")},
}


def mlflow_client(tracking_uri: str) -> MlflowClient:
    """An MlflowClient bound to `tracking_uri` (no global tracking URI is set).

    Also bounds MLflow's own HTTP retries unless the user configured them, so that our retries
    (not MLflow's ~4 minutes of backoff) decide how long an unreachable server is waited for.
    """
    for name, value in _MLFLOW_DEFAULTS.items():
        env.set_default(name, value)
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def default_artifact_root(tracking_uri: str) -> Path | None:
    """For `sqlite:///W/mlflow.db`: `W/mlartifacts` (= `Workdir.mlflow_artifacts`); None for servers."""
    if not tracking_uri.startswith("sqlite:"):
        return None
    db = Path(unquote(urlparse(tracking_uri).path))
    return db.parent / "mlartifacts"


def ensure_experiment(
    client: MlflowClient, tracking_uri: str, name: str, artifact_root: Path | None = None
) -> str:
    """The id of experiment `name`, created if missing.

    On sqlite the artifact location is explicit (`artifact_root/<name>`): without it MLflow writes
    to `./mlruns` of whatever the current directory happens to be. A server keeps its own default
    (`artifact_root` is ignored): clients must not write to paths only they can see.
    """

    def get_or_create() -> str:
        exp = client.get_experiment_by_name(name)
        if exp is not None:
            return str(exp.experiment_id)
        root = (
            None
            if is_remote(tracking_uri)
            else artifact_root or default_artifact_root(tracking_uri)
        )
        location = (root / name).resolve().as_uri() if root is not None else None
        try:
            return str(client.create_experiment(name, artifact_location=location))
        except Exception as exc:  # created concurrently by another process: use theirs
            exp = client.get_experiment_by_name(name)
            if exp is None:
                raise exc from None
            return str(exp.experiment_id)

    return call_with_retries(tracking_uri, f"experiment {name!r}", get_or_create)


@contextmanager
def fluent_target(uri: str, experiment_id: str) -> Iterator[None]:
    """The fluent API (used by mlflow.pytorch.log_model) reads a process-global URI and experiment:
    point them at this run's for the call, then restore the globals and the environment (mlflow's
    setter rewrites MLFLOW_TRACKING_URI)."""
    from mlflow.tracking import fluent
    from mlflow.tracking._tracking_service import utils

    saved = utils._tracking_uri, fluent._active_experiment_id
    with env.preserved("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_ID"):
        utils.set_tracking_uri(uri)
        fluent._active_experiment_id = experiment_id  # type: ignore[assignment]
        try:
            yield
        finally:
            utils._tracking_uri, fluent._active_experiment_id = saved
