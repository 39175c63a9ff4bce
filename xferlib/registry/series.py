"""Metric series on a registered version's own run, appended after the run has finished.

The monitor adds one point per checked window (the label-free accuracy estimate), so a version's
MLflow page charts how it fares in production, window after window.
"""

from __future__ import annotations

import time

from xferlib.registry.client import call_with_retries, mlflow_client
from xferlib.registry.versions import get_version_info


def log_version_metrics(
    tracking_uri: str, name: str, version: str, metrics: dict[str, float], step: int | None = None
) -> str:
    """Append `metrics` (one point each; step: unix seconds by default) to the version's run;
    returns the run id."""
    from mlflow.entities import Metric

    run_id = get_version_info(tracking_uri, name, version).run_id
    now_ms = int(time.time() * 1000)
    at = now_ms // 1000 if step is None else step
    batch = [Metric(k, float(v), now_ms, at) for k, v in metrics.items()]
    client = mlflow_client(tracking_uri)
    call_with_retries(
        tracking_uri,
        f"log metrics on {name} v{version}",
        lambda: client.log_batch(run_id, metrics=batch),
    )
    return run_id
