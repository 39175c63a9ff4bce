"""Monitoring stages: a version's drift reference, scoring production batches, the drift check."""

from __future__ import annotations

import os
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from xferlib.data.imageset import ImageList, ImageSet
from xferlib.stages.context import Context, write_json

PathLike = str | os.PathLike[str] | None


def reference_dir(ctx: Context, name: str, version: str) -> Path:
    return ctx.wd.references / name / f"v{version}"


def build_reference(ctx: Context, model: Any, images: ImageSet, name: str, version: str) -> Path:
    """The champion's own view of its training data: PCA-reduced embeddings, predictions, properties."""
    import torch

    from xferlib import drift
    from xferlib.models.predictor import Predictor

    cfg = ctx.params.drift
    if len(images) > cfg.reference_size:  # subsample before the forward pass, not after
        g = torch.Generator().manual_seed(cfg.seed)
        images = images.subset(torch.randperm(len(images), generator=g)[: cfg.reference_size])
    scores = Predictor.from_classifier(model).infer(images)
    probs, feats = scores.probs, scores.embeddings
    h, w = images.images.shape[-2:]
    props = drift.image_properties(images.images, np.full(len(images), w), np.full(len(images), h))
    meta = pd.DataFrame(
        {"image_id": images.ids or [str(i) for i in range(len(images))], "model_version": version}
    )
    out = reference_dir(ctx, name, version)
    drift.build_reference(
        out,
        probs=probs,
        features=feats,
        props=props,
        model_name=name,
        model_version=version,
        cfg=cfg,
        meta=meta,
    )
    return out


def _reference_for(ctx: Context, name: str, version: str) -> Any:
    """Load a version's reference; fetch it from the version's MLflow run when not local."""
    from xferlib import drift

    out = reference_dir(ctx, name, version)
    if not (out / "reference.parquet").exists():
        from xferlib.registry import download_version_artifact

        with tempfile.TemporaryDirectory(dir=ctx.wd.ensure().root) as tmp:
            got = download_version_artifact(
                ctx.wd.mlflow_uri, name, version, "reference", Path(tmp)
            )
            out.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.replace(got, out)
            except OSError:  # a concurrent scorer fetched it first: theirs is the same artifact
                if not (out / "reference.parquet").exists():
                    raise
    return drift.load_reference(out)


def _load_source(
    ctx: Context, src: str | list[str], tmp: Path
) -> tuple[ImageList, pd.DataFrame, dict[str, int]]:
    """Images of a folder, an s3:// prefix or a list of files, validated (bad files quarantined)."""
    from xferlib.data.ingest import scan_folder

    srcs = [src] if isinstance(src, str) else list(src)
    if len(srcs) == 1 and str(srcs[0]).startswith("s3://"):
        from xferlib import storage

        for uri in storage.list_uris(str(srcs[0])):
            storage.download_file(uri, tmp / uri.rstrip("/").rsplit("/", 1)[-1])
        folder = tmp
    elif len(srcs) == 1 and Path(srcs[0]).is_dir():
        folder = Path(srcs[0])
    else:
        for i, f in enumerate(srcs):
            if not Path(f).is_file():
                raise FileNotFoundError(f"image {f} does not exist")
            os.symlink(Path(f).resolve(), tmp / f"{i:06d}-{Path(f).name}")
        folder = tmp
    return scan_folder(folder, ctx.params.data, ctx.wd.quarantine)


def score_images(
    ctx: Context, src: str | list[str], model_uri: str | None, window_id: str | None
) -> tuple[pd.DataFrame, dict[str, Any]]:
    from xferlib import drift
    from xferlib.registry import load_predictor

    name = ctx.params.registry.model_name
    pred = load_predictor(model_uri or f"models:/{name}@champion", ctx.wd.mlflow_uri)
    with tempfile.TemporaryDirectory(dir=ctx.wd.ensure().root) as tmp:
        images, meta, quarantined = _load_source(ctx, src, Path(tmp))
    info: dict[str, Any] = {
        "model_version": str(pred.version),
        "quarantined": quarantined,
        "rows": len(images),
    }
    if len(images) == 0 and not quarantined:
        raise ValueError(
            f"{src} holds no image files; pass a folder, s3:// prefix or files to score"
        )
    if len(images) == 0:
        return pd.DataFrame(), info  # every file was quarantined: the counts say why
    ref = _reference_for(ctx, name, str(pred.version))
    scores = pred.infer(images)
    probs, feats = scores.probs, scores.embeddings
    props = _properties(images, meta)
    window = window_id or time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]
    meta = meta.assign(
        image_id=meta["sha256"],
        model_version=str(pred.version),
        window_id=window,
        ts=pd.Timestamp.now(tz="UTC"),
    )
    frame = drift.monitoring_frame(
        probs, feats, ref.pca, props, meta[["image_id", "model_version", "window_id", "ts"]]
    )
    info["window_id"] = window
    info["predicted"] = {
        pred.class_names[k]: int(v)
        for k, v in zip(*np.unique(probs.argmax(1), return_counts=True), strict=True)
    }
    return frame, info


def _properties(images: ImageList, meta: pd.DataFrame) -> pd.DataFrame:
    """Drift properties of each image as decoded (its own size), not as resized for the model."""
    from xferlib import drift

    w, h = meta["width"].to_numpy(), meta["height"].to_numpy()
    parts = [drift.image_properties(x, w[i], h[i]).set_axis(i) for i, x in images.by_size()]
    return pd.concat(parts).sort_index().reset_index(drop=True)


def score(
    workdir: PathLike,
    src: str | list[str],
    *,
    model_uri: str | None = None,
    window_id: str | None = None,
    params_path: str | None = None,
) -> dict[str, Any]:
    """Score a production batch with the champion and append it to the monitoring log."""
    from xferlib import monitoring

    ctx = Context.load(workdir, params_path)
    frame, info = score_images(ctx, src, model_uri, window_id)
    if len(frame):
        monitoring.append(ctx.wd.monitoring, frame)
    return info


def drift(
    workdir: PathLike,
    *,
    current: str | None = None,
    model_uri: str | None = None,
    window_id: str | None = None,
    params_path: str | None = None,
) -> dict[str, Any]:
    """Compare a monitoring-log window (or a folder scored on the fly) with the reference."""
    from xferlib import drift as d
    from xferlib import monitoring

    ctx = Context.load(workdir, params_path)
    name = ctx.params.registry.model_name
    if current is not None:
        frame, _ = score_images(ctx, current, model_uri, window_id)
    else:
        frame = monitoring.read_window(ctx.wd.monitoring, window_id)
    if len(frame) == 0:
        raise ValueError("the window has 0 rows; score a production batch first (`xfer score SRC`)")
    version = str(frame["model_version"].iloc[-1])
    ref = _reference_for(ctx, name, version)
    out_dir = ctx.wd.reports / f"{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:6]}"
    report = d.check_drift(
        ref.frame, frame, ctx.params.drift, reference_version=version, out_dir=out_dir,
        render=ctx.params.drift.evidently,
    )  # fmt: skip
    result = report.to_dict()
    result["window_id"] = str(frame["window_id"].iloc[-1]) if "window_id" in frame else None
    write_json(out_dir / "report.json", result)
    _log_report(ctx, out_dir, result)
    return result


def _log_report(ctx: Context, out_dir: Path, report: dict[str, Any]) -> None:
    """Each drift report is an MLflow run of experiment xfer-drift (HTML + JSON artifacts)."""
    from xferlib.registry.runs import Tracker

    with Tracker.start(
        ctx.wd.mlflow_uri,
        "xfer-drift",
        run_name=report["report_id"],
        tags={
            "xfer.drift.status": report["status"],
            "xfer.reference_version": report["reference_version"],
        },
        artifact_root=ctx.wd.mlflow_artifacts,
    ) as run:
        run.log_metrics(
            0, {"drift": float(report["drift"]), "window_size": float(report["window_size"])}
        )
        run.log_artifact(out_dir, "report")
    report["mlflow_run_id"] = run.run_id
