"""Incidents, the I/O shell: open (or join) the model's incident for a drift the policy acts on,
list and close them, and record a retrain's claim, start and verdict on its incident.

The store is `Workdir.incidents` (XFER_INCIDENTS: a folder or s3:// prefix every worker reaches,
else `<workdir>/incidents`); every change is a compare-and-swap (`xferlib.labels.incidents`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from xferlib.context import Context, PathLike
from xferlib.labels.incidents import Incident, IncidentStore, advance
from xferlib.stages.results import DriftResult, IncidentsResult


def store(ctx: Context) -> IncidentStore:
    return IncidentStore(ctx.wd.incidents)


def store_for(workdir: PathLike) -> IncidentStore:
    return store(Context.load(workdir))


@dataclass(frozen=True)
class ClaimedRetrain:
    """What an incident's retrain works on: its accepted labels, its last drift report (the
    marker's holder and the lineage tag), and a name for the feedback dataset."""

    feedback: str
    drift_report: str
    name: str


class _NotReady(Exception):
    pass


def claim_retrain(
    workdir: PathLike, incident_id: str, now: datetime | None = None
) -> ClaimedRetrain | None:
    """Move the incident to retraining if it has `retrain.min_labels` accepted labels, new ones
    since its last retrain, and the drift cool-down since that retrain has passed; None if not."""
    ctx = Context.load(workdir)
    now = now or datetime.now(UTC)
    need, cooldown = ctx.params.retrain.min_labels, ctx.params.drift.cooldown_minutes

    def claim(inc: Incident) -> Incident:
        if inc.state != "labels_arriving" or inc.accepted < need:
            raise _NotReady
        last = [t["at"] for t in inc.timeline if t["state"] == "retraining"]
        if last and now < datetime.fromisoformat(last[-1]) + timedelta(minutes=cooldown):
            raise _NotReady
        note = f"{inc.accepted} accepted labels >= retrain.min_labels {need}"
        return advance(inc, "retraining", note, retrain_request=inc.drift_reports[-1])

    try:
        inc = store(ctx).change(incident_id, claim)
    except _NotReady:
        return None
    name = f"{inc.id}-r{inc.retrains + 1}"
    return ClaimedRetrain(str(ctx.wd.labels(inc.id) / "dataset"), inc.drift_reports[-1], name)


def retrain_started(workdir: PathLike, drift_report: str, request_id: str) -> Incident | None:
    """The incident of `drift_report` is retraining (a no-op when claim_retrain moved it)."""
    incidents = store_for(workdir)
    inc = incidents.find_by_report(drift_report) if drift_report else None
    if inc is None or inc.state not in ("open", "labels_arriving", "rejected"):
        return inc
    return incidents.transition(
        inc.id, "retraining", f"retrain {request_id}", retrain_request=request_id
    )


def retrain_outcome(
    workdir: PathLike, drift_report: str, status: str, version: str, action: str
) -> Incident | None:
    """Record a retrain's end on the incident its drift report belongs to, if it is retraining:
    promoted (then closed), rejected (more labels may come), or, when it failed, back to waiting
    for labels (or open, when it had none: nothing was trained)."""
    incidents = store_for(workdir)
    inc = incidents.find_by_report(drift_report) if drift_report else None
    if inc is None or inc.state != "retraining":
        return None
    if status != "finished":  # failed, or never started: nothing was trained
        back = "labels_arriving" if inc.labels else "open"
        return incidents.transition(inc.id, back, f"retrain {status}")
    state = "promoted" if action == "promote" else "rejected"
    note = f"v{version} {action}"
    inc = incidents.transition(
        inc.id, state, note, challenger_version=version, retrains=inc.retrains + 1
    )
    return (
        incidents.transition(inc.id, "closed", "champion replaced") if state == "promoted" else inc
    )


def open_incident(workdir: PathLike, result: DriftResult) -> tuple[Incident, bool]:
    """The model's active incident joined by this window (False), or a new one (True)."""
    ctx = Context.load(workdir)
    report = result.report
    return store(ctx).open_or_join(
        ctx.params.registry.model_name,
        report.reference_version,
        result.window_id or "",
        report.report_id,
    )


def list_incidents(workdir: PathLike) -> IncidentsResult:
    ctx = Context.load(workdir)
    return IncidentsResult(ctx.wd.incidents, [i.to_dict() for i in store(ctx).all()])


def close_incident(workdir: PathLike, incident_id: str) -> IncidentsResult:
    """An operator closes an incident (from any state but closed)."""
    ctx = Context.load(workdir)
    inc = store(ctx).transition(incident_id, "closed", "closed by an operator")
    return IncidentsResult(ctx.wd.incidents, [inc.to_dict()])
