"""Registry-facing stages: predict with a registered model, history, rollback, lineage."""

from __future__ import annotations

import os
from pathlib import Path

from xferlib.context import Context, PathLike
from xferlib.stages.results import (
    HistoryResult,
    LineageResult,
    Prediction,
    PredictResult,
    RollbackResult,
)


def predict(workdir: PathLike, model_uri: str, images: list[Path]) -> PredictResult:
    """Classify image files with a registered model, through the model's own transforms."""
    import tempfile

    from xferlib.data.ingest import scan_folder
    from xferlib.registry import load_predictor

    ctx = Context.load(workdir)
    pred = load_predictor(model_uri, ctx.wd.mlflow_uri)
    with tempfile.TemporaryDirectory() as tmp:
        for i, f in enumerate(images):
            if not f.is_file():
                raise FileNotFoundError(f"image {f} does not exist")
            os.symlink(f.resolve(), Path(tmp) / f"{i:06d}-{f.name}")
        data, meta, quarantined = scan_folder(Path(tmp), ctx.params.data, ctx.wd.quarantine)
    out = pred.predict(data)
    paths = [Path(str(p)).name.split("-", 1)[-1] for p in meta["path"]]
    rows = [
        Prediction(p, n, float(pr))
        for p, n, pr in zip(paths, out.labels, out.probs.max(1), strict=True)
    ]
    return PredictResult(model_uri, str(pred.version), rows, quarantined)


def _name(ctx: Context, name: str | None) -> str:
    return name or ctx.params.registry.model_name


def history(
    workdir: PathLike, name: str | None = None, params_path: str | None = None
) -> HistoryResult:
    from xferlib.registry import history as reg_history

    ctx = Context.load(workdir, params_path)
    rows = reg_history(ctx.wd.mlflow_uri, _name(ctx, name))
    return HistoryResult(_name(ctx, name), list(rows))


def rollback(
    workdir: PathLike, name: str | None = None, params_path: str | None = None
) -> RollbackResult:
    from xferlib.alerts import Alert, AlertSink
    from xferlib.registry import rollback as reg_rollback

    ctx = Context.load(workdir, params_path)
    row = reg_rollback(ctx.wd.mlflow_uri, _name(ctx, name))
    AlertSink(ctx.wd.alerts).send(
        Alert(
            kind="rolled_back",
            model_name=_name(ctx, name),
            model_version=str(row.champion_after),
            message=f"{_name(ctx, name)} rolled back from v{row.version} to v{row.champion_after}",
            dedup_key=f"rolled_back:{_name(ctx, name)}:{row.timestamp}",
        )
    )
    return RollbackResult(row)


def lineage(workdir: PathLike, model_uri: str) -> LineageResult:
    from xferlib.registry import lineage as reg_lineage

    ctx = Context.load(workdir)
    raw = dict(reg_lineage(model_uri, ctx.wd.mlflow_uri))
    name, version, run_id = raw.pop("name"), raw.pop("version"), raw.pop("run_id")
    return LineageResult(name, version, run_id, tags=raw | _incident(ctx, name, version, raw))


def _incident(ctx: Context, name: str, version: str, tags: dict[str, str]) -> dict[str, str]:
    """The incident that made this version (its challenger) or whose drift report asked for it,
    and the label data it brought: lineage from the incident store's side."""
    from xferlib.labels.incidents import IncidentStore

    found = [
        i for i in IncidentStore(ctx.wd.incidents).all()
        if i.model_name == name and (
            i.challenger_version == version
            or (tags.get("drift_report") and tags["drift_report"] in i.drift_reports)
        )
    ]  # fmt: skip
    inc = found[-1] if found else None
    return {
        "incident": inc.id if inc else "",
        "label_data_version": inc.label_data_version if inc else "",
    }
