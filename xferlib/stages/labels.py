"""Late labels, the I/O shell: write an incident's label request, import what annotators send
back. An incident's files under `<workdir>/labels/<id>/` are DVC-tracked (request and
accepted-labels dataset), so a worker elsewhere `dvc pull`s them; the incident itself lives in
the shared store (`stages/incidents.py`).
"""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from xferlib.context import Context, PathLike
from xferlib.labels.incidents import Incident, IncidentStore, advance
from xferlib.stages.results import (
    LabelImportResult,
    LabelRequestResult,
)


def store(ctx: Context) -> IncidentStore:
    return IncidentStore(ctx.wd.incidents)


LABEL_QUARANTINE = "labels.jsonl"  # in <workdir>/quarantine/, beside the images' quarantine.jsonl
# states that take labels (during a retrain they are counted for the next one)
WAITING = ("labels_requested", "labels_arriving", "rejected", "retraining")


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
