"""Registry audit history: which version was live, when and why.

MLflow keeps no history of alias moves (mlflow/mlflow#2169), so every gate decision and rollback is
written as one run of the experiment `xfer-registry-audit`, in the same backend as the registry
(server or sqlite): the history survives as long as the registry does and needs no extra store.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from xferlib.registry.client import call_with_retries, ensure_experiment, mlflow_client

if TYPE_CHECKING:
    from mlflow import MlflowClient

AUDIT_EXPERIMENT = "xfer-registry-audit"
_PREFIX = "xfer.audit."
_FIELDS = (
    "model",
    "version",
    "action",
    "champion_before",
    "champion_after",
    "reasons",
    "decision_id",
)


@dataclass(frozen=True)
class AuditRow:
    """One registry event. `action` is promoted, rejected or rolled_back; `version` is the version the
    event is about (the challenger, or the version rolled back from); `champion_*` are "" when none."""

    model: str
    version: str
    action: str
    champion_before: str
    champion_after: str
    reasons: str
    decision_id: str
    timestamp_ns: int = 0
    audit_run_id: str = ""

    @property
    def timestamp(self) -> str:
        """UTC ISO-8601 time of the event."""
        stamp = datetime.fromtimestamp(self.timestamp_ns / 1e9, tz=UTC)
        return stamp.isoformat(timespec="milliseconds")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "timestamp": self.timestamp}


def _tags(row: AuditRow) -> dict[str, str]:
    tags = {_PREFIX + f: str(getattr(row, f)) for f in _FIELDS}
    tags[_PREFIX + "timestamp_ns"] = str(row.timestamp_ns or time.time_ns())
    tags["mlflow.runName"] = f"{row.model} v{row.version} {row.action}"
    return tags


def _from_run(run: Any) -> AuditRow:
    tags = run.data.tags
    values = {f: tags.get(_PREFIX + f, "") for f in _FIELDS}
    stamp = int(tags.get(_PREFIX + "timestamp_ns", "0") or 0)
    return AuditRow(**values, timestamp_ns=stamp, audit_run_id=run.info.run_id)


def _experiment_id(client: MlflowClient, tracking_uri: str) -> str:
    return ensure_experiment(client, tracking_uri, AUDIT_EXPERIMENT)


def _search(client: MlflowClient, exp_id: str, filter_string: str) -> list[AuditRow]:
    """All matching audit rows, oldest first (no retries here: callers wrap the whole read)."""
    rows: list[AuditRow] = []
    token = None
    while True:
        page = client.search_runs([exp_id], filter_string, max_results=1000, page_token=token)
        rows.extend(_from_run(r) for r in page)
        token = page.token
        if not token:
            return sorted(rows, key=lambda r: r.timestamp_ns)


def write_audit(tracking_uri: str, row: AuditRow) -> AuditRow:
    """Record `row` once: a retry or a resumed operation with the same decision_id writes nothing."""
    client = mlflow_client(tracking_uri)
    exp_id = _experiment_id(client, tracking_uri)
    exists = f"tags.`{_PREFIX}decision_id` = '{row.decision_id}'"
    tags = _tags(row)

    def find_or_create() -> AuditRow:
        if found := _search(client, exp_id, exists):  # also covers a retry after a lost response
            return found[0]
        run = client.create_run(exp_id, tags=tags)
        client.set_terminated(run.info.run_id, "FINISHED")
        return _from_run(client.get_run(run.info.run_id))

    return call_with_retries(tracking_uri, "write audit row", find_or_create)


def history(tracking_uri: str, name: str) -> list[AuditRow]:
    """Every promotion, rejection and rollback of model `name`, oldest first."""
    client = mlflow_client(tracking_uri)
    exp_id = _experiment_id(client, tracking_uri)
    query = f"tags.`{_PREFIX}model` = '{name}'"
    return call_with_retries(
        tracking_uri, "read audit history", lambda: _search(client, exp_id, query)
    )
