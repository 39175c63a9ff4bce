"""Incidents and late labels, the I/O shell: open (or join) an incident for a drift the policy
acts on, write its label request, import what annotators send back, list incidents.

The incidents live in the shared incident store (`Workdir.incidents`: XFER_INCIDENTS, a folder or
s3:// prefix, else `<workdir>/incidents`); an incident's files under `<workdir>/labels/<id>/` are
DVC-tracked (request and accepted-labels dataset), so a worker elsewhere `dvc pull`s them.
"""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from xferlib.context import Context, PathLike
from xferlib.labels.incidents import Incident, IncidentStore, advance
from xferlib.stages.results import (
    DriftResult,
    IncidentsResult,
    LabelImportResult,
    LabelRequestResult,
)

LABEL_QUARANTINE = "labels.jsonl"  # in <workdir>/quarantine/, beside the images' quarantine.jsonl
# states that take labels (during a retrain they are counted for the next one)
WAITING = ("labels_requested", "labels_arriving", "rejected", "retraining")


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


def request_labels(
    workdir: PathLike, incident_id: str, params_path: str | None = None
) -> LabelRequestResult:
    """Pick `labels.budget` images of the incident's windows worth labelling, write the batch
    (Label Studio tasks + CSV), version it, move the incident to labels_requested and alert."""
    from xferlib.labels.batch import write_request
    from xferlib.labels.select import select

    ctx = Context.load(workdir, params_path)
    incidents, lp = store(ctx), ctx.params.labels
    inc = incidents.get(incident_id)
    advance(inc, "labels_requested")  # refuse before writing anything
    pool = _candidates(ctx, inc)
    embs = pool[sorted((c for c in pool if c.startswith("emb_")), key=lambda c: int(c[4:]))]
    picked = select(embs.to_numpy(), pool["entropy"].to_numpy(), lp.budget, lp.selection, lp.seed)
    keep = ["image_id", "source", "window_id", "pred", "max_softmax", "entropy"]
    folder = ctx.wd.labels(inc.id) / "request"
    files = write_request(folder, pool.iloc[picked][keep].reset_index(drop=True))
    version = _version(ctx, folder)
    request = {
        "folder": files.folder, "tasks_json": files.tasks_json, "batch_csv": files.batch_csv,
        "count": files.count, "method": lp.selection, "data_version": version,
    }  # fmt: skip
    note = f"{files.count} of {len(pool)} images ({lp.selection})"
    incidents.transition(inc.id, "labels_requested", note, label_request=request)
    _alert(ctx, inc, files.count, files.tasks_json, files.batch_csv)
    return LabelRequestResult(
        inc.id, files.count, lp.selection, files.folder, files.tasks_json, files.batch_csv,
        len(pool), version,
    )  # fmt: skip


def _candidates(ctx: Context, inc: Incident) -> pd.DataFrame:
    """The distinct images of the incident's windows, with their champion features."""
    from xferlib import monitoring

    frames = [monitoring.read_window(ctx.wd.monitoring, w) for w in inc.windows]
    pool = pd.concat([f for f in frames if len(f)] or [pd.DataFrame()], ignore_index=True)
    if len(pool) == 0:
        raise ValueError(
            f"incident {inc.id}: its windows {list(inc.windows)} have no rows in the monitoring "
            f"log {ctx.wd.monitoring}; score them first (`xfer score SRC --window ID`)"
        )
    missing = [c for c in ("source", "entropy") if c not in pool]
    if missing:
        raise ValueError(
            f"incident {inc.id}: the monitoring log lacks {missing} (scored before xfer kept "
            "each image's source and entropy); score the window again to request labels"
        )
    return pool.drop_duplicates("image_id", keep="last").reset_index(drop=True)


def _version(ctx: Context, folder: Path) -> str:
    """DVC-track and push `folder` when the work dir is a DVC repo; its data version or ""."""
    from xferlib import versioning

    if not ctx.wd.dvc_dir.exists():
        return ""
    version = versioning.track(ctx.wd.root, folder)
    versioning.push(ctx.wd.root, [str(folder)])
    return str(version)


def _alert(ctx: Context, inc: Incident, count: int, tasks: str, csv: str) -> None:
    from xferlib.alerts import Alert, AlertSink

    AlertSink(ctx.wd.alerts).send(
        Alert(
            kind="labels_requested",
            model_name=inc.model_name,
            model_version=inc.model_version,
            message=f"incident {inc.id}: label {count} images; Label Studio tasks {tasks}, "
            f"CSV {csv}; then `xfer labels import FILE --incident {inc.id}`",
            details={"incident": inc.id, "count": count, "tasks_json": tasks, "batch_csv": csv},
            dedup_key=f"labels_requested:{inc.id}",
        )
    )


def import_labels(
    workdir: PathLike,
    file: PathLike,
    incident_id: str | None = None,
    params_path: str | None = None,
) -> LabelImportResult:
    """Read a labels file, quarantine every row that cannot be trusted (with its reason), add the
    rest to the incident's accepted-labels dataset (DVC-versioned) and count them per class."""
    from xferlib.data.splits import read_label_map
    from xferlib.labels.batch import accepted_labels, requested
    from xferlib.labels.importer import UnreadableLabels, check_rows, read_labels

    ctx = Context.load(workdir, params_path)
    inc = _waiting(ctx, incident_id)
    path, folder = Path(str(file)), ctx.wd.labels(inc.id)
    kept = _keep_copy(path, folder / "imports")  # the file as given, before anything can fail
    try:
        rows, malformed = read_labels(path)
    except UnreadableLabels as exc:
        _quarantine(ctx, inc, path, kept, [{"reason": "unreadable_file", "detail": str(exc)}], "")
        raise
    files = requested(folder / "request")
    dataset = folder / "dataset"
    classes = set(read_label_map(ctx.wd.prepared))
    accepted, rejected = check_rows(rows, set(files), classes, accepted_labels(dataset))
    version = _add(ctx, dataset, files, {r.image_id: r.label for r in accepted}, inc)
    bad = sorted([*malformed, *rejected], key=lambda r: r.row)
    log = _quarantine(ctx, inc, path, kept, [r.to_dict() for r in bad], version)
    inc = _arrived(ctx, inc, dataset, version, len(accepted), path)
    return LabelImportResult(
        inc.id, str(path), len(accepted) + len(bad), len(accepted),
        dict(sorted(Counter(r.reason for r in bad).items())), inc.labels, version, inc.state,
        str(log), inc.accepted >= ctx.params.retrain.min_labels,
    )  # fmt: skip


def _waiting(ctx: Context, incident_id: str | None) -> Incident:
    """The incident the labels are for: the one named, else the model's active one."""
    incidents = store(ctx)
    inc = (
        incidents.get(incident_id)
        if incident_id
        else incidents.active(ctx.params.registry.model_name)
    )
    if inc is None:
        raise ValueError(
            f"no incident of {ctx.params.registry.model_name} is waiting for labels; "
            "pass --incident ID (`xfer incidents` lists them)"
        )
    if inc.state not in WAITING:
        raise ValueError(
            f"incident {inc.id} is {inc.state}, not waiting for labels ({', '.join(WAITING)}); "
            "`xfer incidents` shows its timeline"
        )
    return inc


def _keep_copy(path: Path, imports: Path) -> str:
    if not path.is_file():
        return ""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
    dest = imports / f"{stamp}-{path.name}"
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, dest)
    return str(dest)


def _add(
    ctx: Context, dataset: Path, files: dict[str, Path], labels: dict[str, str], inc: Incident
) -> str:
    """Add accepted labels to the dataset and version it; the dataset's data version."""
    from xferlib.labels.batch import add_to_dataset

    if labels:
        add_to_dataset(dataset, files, labels)
        return _version(ctx, dataset)
    return inc.label_data_version  # nothing new: the version stands


def _quarantine(
    ctx: Context, inc: Incident, path: Path, kept: str, rows: list[dict[str, Any]], version: str
) -> Path:
    """One JSON line per rejected row (or for a file that could not be read), with its reason."""
    log = ctx.wd.quarantine / LABEL_QUARANTINE
    log.parent.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC).isoformat(timespec="seconds")
    base = {
        "incident": inc.id,
        "file": str(path),
        "copy": kept,
        "data_version": version,
        "time": now,
    }
    with log.open("a", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(base | row) + "\n")
        f.flush()
        os.fsync(f.fileno())
    return log


def _arrived(
    ctx: Context, inc: Incident, dataset: Path, version: str, added: int, path: Path
) -> Incident:
    """labels_arriving with the per-class counts, when this file added any."""
    from xferlib.labels.batch import class_counts

    if not added:
        return inc
    counts = class_counts(dataset)
    if inc.state == "retraining":  # counted now, used by the next retrain
        return store(ctx).change(
            inc.id, lambda cur: replace(cur, labels=counts, label_data_version=version)
        )
    note = f"+{added} from {path.name}: {sum(counts.values())} accepted"
    return store(ctx).transition(
        inc.id, "labels_arriving", note, labels=counts, label_data_version=version
    )
