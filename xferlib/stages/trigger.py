"""From a drift verdict to (at most one) retraining request, with alerts along the way.

The state (drift streak, last retrain, the retrain in flight) lives in `<workdir>/state/` and is
read-modified-written under an exclusive file lock, so two monitor runs racing on the same drift
request one retrain, and a manual `xfer retrain` cannot start beside one in flight. The lifecycle
that calls these in order (claim, started, retrain, finished or failed) is `xferlib.loop`;
orchestration (the Prefect event, the deployment's concurrency limit of 1) sits on top in flows/.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from xferlib.atomic import atomic_write_json, exclusive_lock
from xferlib.context import Context, read_json
from xferlib.stages.results import Decision, DriftResult
from xferlib.workdir import Workdir

if TYPE_CHECKING:
    from xferlib.drift import AccuracyEstimate


@contextlib.contextmanager
def _locked(wd: Workdir) -> Iterator[Path]:
    with exclusive_lock(wd.trigger_lock):
        yield wd.trigger_state


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
    """Apply should_retrain (window size, consecutive windows, cool-down, coalescing) and alert.

    A retrain decision takes the in-flight marker for the report in the same locked step.
    """
    from xferlib.drift import DriftState, should_retrain

    ctx = Context.load(workdir)
    now = now or datetime.now(UTC)
    report = result.report
    with _locked(ctx.wd) as path:
        raw = _read(path)
        if report.drift:
            est = report.accuracy
            _send(
                ctx,
                "drift_detected",
                report.reference_version,
                f"drift in window {result.window_id}: {report.drifted_columns}"
                + _estimate_text(est),
                f"drift:{report.report_id}",
                report.report_html or "",
                tests=report.to_dict()["tests"],
                estimated_accuracy=None if est is None else est.to_dict(),
            )
        decision = should_retrain(report, DriftState.from_dict(raw["drift"]), ctx.params.drift, now)
        retrain, reason = decision.retrain, decision.reason
        if retrain and _in_flight(raw, now):
            retrain, reason = (
                False,
                f"coalesced: retrain for {raw['in_flight']} is already in flight",
            )
        prior = dict(raw["drift"])
        raw["drift"] = decision.state.to_dict()
        if retrain:
            _take(raw, report.report_id, now, prior)
        atomic_write_json(path, raw)
    return Decision(retrain, reason, report.status, ctx.params.registry.model_name)


def _estimate_text(est: AccuracyEstimate | None) -> str:
    if est is None:
        return ""
    return (
        f"; estimated accuracy {est.accuracy:.1%} ({est.low:.1%}-{est.high:.1%}, ATC, no labels) "
        f"vs {est.reference_accuracy:.1%} on the reference"
    )


# A retrain that never reported back (its process was killed) stops blocking new ones after this.
IN_FLIGHT_TIMEOUT = timedelta(hours=6)


class RetrainInFlight(RuntimeError):
    """A retrain is already running for this work directory (refused, nothing was started)."""


def _read(path: Path) -> dict[str, Any]:
    raw: dict[str, Any] = read_json(path, default={"drift": {}, "in_flight": None})
    raw.setdefault("drift", {})
    return raw


def _in_flight(raw: dict[str, Any], now: datetime) -> bool:
    if not raw.get("in_flight"):
        return False
    since = raw.get("in_flight_since")
    return since is None or now - datetime.fromisoformat(since) < IN_FLIGHT_TIMEOUT


def _take(raw: dict[str, Any], holder: str, now: datetime, prior: dict[str, Any]) -> None:
    """Mark `holder` in flight; `prior` is the drift state to restore if it fails or never runs."""
    raw["in_flight"], raw["in_flight_since"] = holder, now.isoformat()
    raw["in_flight_prior"] = {
        "streak": prior.get("streak", 0),
        "last_retrain": prior.get("last_retrain"),
    }


def in_flight(workdir: str | os.PathLike[str], now: datetime | None = None) -> str | None:
    """The report (or manual request) whose retrain is in flight, if any."""
    ctx = Context.load(workdir)
    with _locked(ctx.wd) as path:
        raw = _read(path)
    return str(raw["in_flight"]) if _in_flight(raw, now or datetime.now(UTC)) else None


def claim(
    workdir: str | os.PathLike[str],
    holder: str,
    *,
    force: bool = False,
    manual: bool = False,
    now: datetime | None = None,
) -> None:
    """Take the in-flight marker for `holder` (a no-op when `decide` already took it for it).

    Refuses with RetrainInFlight while another retrain is in flight, unless `force`. A manual
    request skips the cool-down (an operator asked for it) but records itself as the last retrain,
    so a drift-triggered retrain right after it still waits out the cool-down.
    """
    ctx = Context.load(workdir)
    now = now or datetime.now(UTC)
    with _locked(ctx.wd) as path:
        raw = _read(path)
        if raw.get("in_flight") == holder and _in_flight(raw, now):
            return
        if _in_flight(raw, now) and not force:
            raise RetrainInFlight(
                f"a retrain for {raw['in_flight']} is in flight since {raw.get('in_flight_since')}; "
                "wait for it to report back (xfer monitor / alerts.jsonl), or rerun with --force "
                f"if it died (the marker also expires after {IN_FLIGHT_TIMEOUT})"
            )
        prior = dict(raw["drift"])
        if manual:
            raw["drift"] = {**raw["drift"], "last_retrain": now.isoformat()}
            raw["last_manual"] = {"request": holder, "at": now.isoformat(), "forced": force}
        _take(raw, holder, now, prior)
        atomic_write_json(path, raw)


def start_cooldown(workdir: str | os.PathLike[str], now: datetime | None = None) -> None:
    """Record a retrain that no drift decision recorded (labels that arrived for an incident):
    the drift cool-down runs from now, so the next drifted windows do not retrain at once."""
    ctx = Context.load(workdir)
    when = (now or datetime.now(UTC)).isoformat()
    with _locked(ctx.wd) as path:
        raw = _read(path)
        raw["drift"] = {**raw["drift"], "last_retrain": when}
        atomic_write_json(path, raw)


def release(workdir: str | os.PathLike[str], holder: str, *, undo: bool = False) -> None:
    """Clear the marker if `holder` still holds it; `undo` also restores the streak and cool-down
    (the retrain crashed or never ran, so it must not delay the next one)."""
    ctx = Context.load(workdir)
    with _locked(ctx.wd) as path:
        raw = _read(path)
        if raw.get("in_flight") != holder:
            return  # released already, or taken over by a forced request
        prior = raw.pop("in_flight_prior", None) or {}
        if undo:
            raw["drift"] = {**raw["drift"], **prior}
        raw["in_flight"], raw["in_flight_since"] = None, None
        atomic_write_json(path, raw)


def retrain_started(
    workdir: str | os.PathLike[str], report_id: str, flow_run_id: str, attempt: str = ""
) -> None:
    ctx = Context.load(workdir)
    _send(
        ctx,
        "retrain_started",
        "",
        f"retraining for {report_id or 'manual request'} (flow run {flow_run_id or 'none'})",
        f"retrain_started:{flow_run_id or attempt or report_id}",
        flow_run_id=flow_run_id,
    )


def retrain_finished(
    workdir: str | os.PathLike[str],
    report_id: str,
    flow_run_id: str,
    *,
    version: str,
    action: str,
    attempt: str = "",
) -> None:
    """Release the in-flight marker so the next drift can retrain, and alert the gate's verdict."""
    ctx = Context.load(workdir)
    release(workdir, report_id)
    _send(
        ctx,
        "retrain_finished",
        version,
        f"retraining for {report_id} finished: v{version} {action}",
        f"retrain_finished:{flow_run_id or attempt or report_id}",
        flow_run_id=flow_run_id,
    )


def retrain_failed(
    workdir: str | os.PathLike[str],
    report_id: str,
    flow_run_id: str,
    error: str,
    attempt: str = "",
) -> None:
    """Release the marker (undoing the cool-down it started: nothing was trained) and alert."""
    ctx = Context.load(workdir)
    release(workdir, report_id, undo=True)
    line = error.strip().splitlines()[0] if error.strip() else "unknown error"
    _send(
        ctx,
        "retrain_failed",
        "",
        f"retraining for {report_id} failed: {line}",
        f"retrain_failed:{flow_run_id or attempt or report_id}",
        flow_run_id=flow_run_id,
        error=line,
    )
