"""From a drift verdict to (at most one) retraining request, with alerts along the way.

The state (drift streak, last retrain, the retrain in flight) lives in `<workdir>/state/` and is
read-modified-written under an exclusive file lock, so two monitor runs racing on the same drift
request one retrain. Orchestration (the Prefect event, the deployment's concurrency limit of 1)
sits on top of this in flows/.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from xferlib.stages.context import Context, read_json, write_json
from xferlib.stages.results import Decision, DriftResult, GateResult


@contextlib.contextmanager
def _locked(state_dir: Path) -> Iterator[Path]:
    state_dir.mkdir(parents=True, exist_ok=True)
    with open(state_dir / "trigger.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield state_dir / "trigger.json"
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _send(
    ctx: Context,
    kind: str,
    version: str,
    message: str,
    key: str,
    report_path: str = "",
    **details: Any,
) -> None:
    from xferlib.alerts import Alert, AlertSink

    AlertSink(ctx.wd.alerts).send(
        Alert(
            kind=kind,
            model_name=ctx.params.registry.model_name,
            model_version=version,
            report_path=report_path,
            message=message,
            details=details,
            dedup_key=key,
        )
    )


def decide(
    workdir: str | os.PathLike[str], result: DriftResult, now: datetime | None = None
) -> Decision:
    """Apply should_retrain (window size, consecutive windows, cool-down, coalescing) and alert."""
    from xferlib.drift import DriftState, should_retrain

    ctx = Context.load(workdir)
    now = now or datetime.now(UTC)
    report = result.report
    with _locked(ctx.wd.state) as path:
        raw = read_json(path, default={"drift": {}, "in_flight": None})
        if report.drift:
            _send(
                ctx,
                "drift_detected",
                report.reference_version,
                f"drift in window {result.window_id}: {report.drifted_columns}",
                f"drift:{report.report_id}",
                report.report_html or "",
                tests=report.to_dict()["tests"],
            )
        decision = should_retrain(report, DriftState.from_dict(raw["drift"]), ctx.params.drift, now)
        retrain, reason = decision.retrain, decision.reason
        if retrain and _in_flight(raw, now):
            retrain, reason = (
                False,
                f"coalesced: retrain for {raw['in_flight']} is already in flight",
            )
        raw["drift"] = decision.state.to_dict()
        if retrain:
            raw["in_flight"], raw["in_flight_since"] = report.report_id, now.isoformat()
        write_json(path, raw)
    return Decision(retrain, reason, report.status, ctx.params.registry.model_name)


# A retrain that never reported back (its process was killed) stops blocking new ones after this.
IN_FLIGHT_TIMEOUT = timedelta(hours=6)


def _in_flight(raw: dict[str, Any], now: datetime) -> bool:
    if not raw.get("in_flight"):
        return False
    since = raw.get("in_flight_since")
    return since is None or now - datetime.fromisoformat(since) < IN_FLIGHT_TIMEOUT


def retrain_started(workdir: str | os.PathLike[str], report_id: str, flow_run_id: str) -> None:
    ctx = Context.load(workdir)
    _send(
        ctx,
        "retrain_started",
        "",
        f"retraining for {report_id or 'manual request'} (flow run {flow_run_id})",
        f"retrain_started:{flow_run_id or report_id}",
        flow_run_id=flow_run_id,
    )


def retrain_finished(
    workdir: str | os.PathLike[str],
    report_id: str,
    flow_run_id: str,
    *,
    result: GateResult | None = None,
    error: str | None = None,
) -> None:
    """Alert finished/failed and release the in-flight marker so the next drift can retrain."""
    ctx = Context.load(workdir)
    with _locked(ctx.wd.state) as path:
        raw = read_json(path, default={"drift": {}, "in_flight": None})
        raw["in_flight"] = None
        write_json(path, raw)
    if error is not None:
        _send(
            ctx,
            "retrain_failed",
            "",
            f"retraining for {report_id} failed: {error.splitlines()[0] if error else ''}",
            f"retrain_failed:{flow_run_id or report_id}",
            flow_run_id=flow_run_id,
        )
        return
    version = result.version if result else None
    action = result.decision.action if result else None
    _send(
        ctx,
        "retrain_finished",
        str(version or ""),
        f"retraining for {report_id} finished: v{version} {action}",
        f"retrain_finished:{flow_run_id or report_id}",
        flow_run_id=flow_run_id,
    )
