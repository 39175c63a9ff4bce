"""Registry-facing stages: predict with a registered model, history, rollback, lineage."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from xferlib.stages.context import Context

PathLike = str | os.PathLike[str] | None


def predict(workdir: PathLike, model_uri: str, images: list[Path]) -> dict[str, Any]:
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
        {"image": p, "class": n, "probability": float(pr)}
        for p, n, pr in zip(paths, out.labels, out.probs.max(1), strict=True)
    ]
    return {
        "model": model_uri,
        "version": str(pred.version),
        "predictions": rows,
        "quarantined": quarantined,
    }


def _name(ctx: Context, name: str | None) -> str:
    return name or ctx.params.registry.model_name


def history(
    workdir: PathLike, name: str | None = None, params_path: str | None = None
) -> dict[str, Any]:
    from xferlib.registry import history as reg_history

    ctx = Context.load(workdir, params_path)
    rows = reg_history(ctx.wd.mlflow_uri, _name(ctx, name))
    return {"model_name": _name(ctx, name), "history": [r.to_dict() for r in rows]}


def rollback(
    workdir: PathLike, name: str | None = None, params_path: str | None = None
) -> dict[str, Any]:
    from xferlib.alerts import Alert, AlertSink
    from xferlib.registry import rollback as reg_rollback

    ctx = Context.load(workdir, params_path)
    row = reg_rollback(ctx.wd.mlflow_uri, _name(ctx, name))
    out = row.to_dict()
    AlertSink(ctx.wd.alerts).send(
        Alert(
            kind="rolled_back",
            model_name=_name(ctx, name),
            model_version=str(out.get("champion_after", "")),
            message=f"{_name(ctx, name)} rolled back from v{out.get('version')} to v{out.get('champion_after')}",
            dedup_key=f"rolled_back:{_name(ctx, name)}:{out.get('timestamp', '')}",
        )
    )
    return out


def lineage(workdir: PathLike, model_uri: str) -> dict[str, Any]:
    from xferlib.registry import lineage as reg_lineage

    ctx = Context.load(workdir)
    return reg_lineage(model_uri, ctx.wd.mlflow_uri)
