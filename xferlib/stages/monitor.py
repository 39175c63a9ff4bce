"""Monitoring stages: scoring production batches, the drift check against a version's reference.

References are built with each registered version (`xferlib.drift.build_model_reference`, called by
the gate); here they are only read, fetched from the version's MLflow run when not local.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from xferlib.context import Context, PathLike, write_json
from xferlib.data.imageset import ImageList
from xferlib.labels.select import normalised_entropy
from xferlib.release import watch
from xferlib.stages.results import DriftResult, ScoreResult

if TYPE_CHECKING:
    from xferlib.drift import AccuracyEstimate, DriftReport, Reference


def _reference_for(ctx: Context, name: str, version: str) -> Reference:
    """Load a version's reference; fetch it from the version's MLflow run when not local."""
    from xferlib import drift

    out = ctx.wd.reference(name, version)
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
    """Images of a folder, an s3:// prefix or a list of files, validated (bad files quarantined).
    `meta["source"]` is where each image lives (an absolute path or its s3:// URI): a label
    request copies the images it picks from there."""
    from xferlib.data.ingest import scan_folder

    srcs = [src] if isinstance(src, str) else list(src)
    origin: dict[str, str] = {}
    if len(srcs) == 1 and str(srcs[0]).startswith("s3://"):
        from xferlib import storage

        for uri in storage.list_uris(str(srcs[0])):
            local = tmp / uri.rstrip("/").rsplit("/", 1)[-1]
            storage.download_file(uri, local)
            origin[str(local)] = uri
        folder = tmp
    elif len(srcs) == 1 and Path(srcs[0]).is_dir():
        folder = Path(srcs[0])
    else:
        for i, f in enumerate(srcs):
            if not Path(f).is_file():
                raise FileNotFoundError(f"image {f} does not exist")
            os.symlink(Path(f).resolve(), tmp / f"{i:06d}-{Path(f).name}")
        folder = tmp
    images, meta, quarantined = scan_folder(folder, ctx.params.data, ctx.wd.quarantine)
    where = [origin.get(p) or str(Path(p).resolve()) for p in meta["path"]]  # links resolved
    return images, meta.assign(source=where), quarantined


def score_images(
    ctx: Context, src: str | list[str], model_uri: str | None, window_id: str | None
) -> tuple[pd.DataFrame, ScoreResult]:
    """Monitoring rows of a batch scored by the model (default: the champion), and a summary."""
    from xferlib import drift
    from xferlib.registry import load_predictor

    name = ctx.params.registry.model_name
    pred = load_predictor(model_uri or f"models:/{name}@champion", ctx.wd.mlflow_uri)
    with tempfile.TemporaryDirectory(dir=ctx.wd.ensure().root) as tmp:
        images, meta, quarantined = _load_source(ctx, src, Path(tmp))
    if len(images) == 0 and not quarantined:
        raise ValueError(
            f"{src} holds no image files; pass a folder, s3:// prefix or files to score"
        )
    if len(images) == 0:  # every file was quarantined: the counts say why
        return pd.DataFrame(), ScoreResult(str(pred.version), quarantined, rows=0)
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
        entropy=normalised_entropy(probs),  # what a label request ranks by
    )
    passthrough = ["image_id", "model_version", "window_id", "ts", "source", "entropy"]
    frame = drift.monitoring_frame(probs, feats, ref.pca, props, meta[passthrough])
    shadow = watch.shadow_version(ctx, str(pred.version)) if model_uri is None else None
    if shadow is not None:  # the previous champion scores the same images (the watch)
        frame = frame.assign(**watch.shadow_columns(ctx, shadow, images))
    predicted = {
        pred.class_names[k]: int(v)
        for k, v in zip(*np.unique(probs.argmax(1), return_counts=True), strict=True)
    }
    result = ScoreResult(str(pred.version), quarantined, len(images), window, predicted)
    return frame, result


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
) -> ScoreResult:
    """Score a production batch with the champion and append it to the monitoring log."""
    from xferlib import monitoring

    ctx = Context.load(workdir, params_path)
    frame, result = score_images(ctx, src, model_uri, window_id)
    if len(frame):
        monitoring.append(ctx.wd.monitoring, frame)
    return result


def drift(
    workdir: PathLike,
    *,
    current: str | None = None,
    model_uri: str | None = None,
    window_id: str | None = None,
    params_path: str | None = None,
) -> DriftResult:
    """Compare a monitoring-log window (or a folder scored on the fly) with the reference."""
    from xferlib import monitoring

    ctx = Context.load(workdir, params_path)
    if current is not None:
        frame, _ = score_images(ctx, current, model_uri, window_id)
    else:
        frame = monitoring.read_window(ctx.wd.monitoring, window_id)
    if len(frame) == 0:
        raise ValueError("the window has 0 rows; score a production batch first (`xfer score SRC`)")
    out_dir = ctx.wd.reports / f"{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:6]}"
    report = _check(ctx, frame, out_dir)
    window = str(frame["window_id"].iloc[-1]) if "window_id" in frame else None
    watched = watch.judge(ctx, frame, report.accuracy, _reference_for)
    saved = DriftResult(report, window, watch=watched)
    # the one JSON of this report: the verdict plus its window (the MLflow run id comes after)
    write_json(Path(report.report_json or out_dir / "report.json"), saved.to_dict())
    run_id = _log_report(ctx, out_dir, report)
    if ctx.params.drift.evidently:  # off: no Evidently at all (its import alone costs ~4 s)
        _record_snapshot(ctx, report, {"window_id": window or "", "mlflow_run_id": run_id})
    if dump := report.evidently.get("snapshot_dump"):  # the workspace holds its own copy now
        Path(dump).unlink(missing_ok=True)
    return DriftResult(report, window, mlflow_run_id=run_id, watch=watched)


def _record_snapshot(ctx: Context, report: DriftReport, meta: dict[str, str]) -> None:
    """The window as a snapshot of the model's Evidently project. Best effort: the verdict is
    already saved and logged, so a failure here is one line on stderr and the check goes on."""
    from xferlib.drift.workspace import record_window

    try:
        record_window(ctx.wd.evidently_workspace, ctx.params.registry.model_name, report, meta)
    except Exception as exc:  # noqa: BLE001 - any failure of the view must not fail the check
        first = (str(exc).strip().splitlines() or [""])[0]
        print(
            f"xfer: warning: Evidently workspace not updated ({type(exc).__name__}: {first})",
            file=sys.stderr,
        )


def _check(ctx: Context, frame: pd.DataFrame, out_dir: Path) -> DriftReport:
    """The calibrated verdict of the window against its model version's reference."""
    from xferlib import drift as d

    version = str(frame["model_version"].iloc[-1])
    ref = _reference_for(ctx, ctx.params.registry.model_name, version)
    report = d.check_drift(
        ref.frame, frame, ctx.params.drift, reference_version=version, out_dir=out_dir,
        render=ctx.params.drift.evidently, save_json=False,
    )  # fmt: skip
    if ref.accuracy is None:  # a reference built without labels: no estimate
        return report
    scores = frame["max_softmax"].to_numpy()
    return dataclasses.replace(
        report, accuracy=ref.accuracy.estimate(scores, ctx.params.drift.seed)
    )


def _log_report(ctx: Context, out_dir: Path, report: DriftReport) -> str:
    """Each drift report is an MLflow run of experiment xfer-drift (HTML + JSON artifacts)."""
    from xferlib.registry.runs import Tracker

    with Tracker.start(
        ctx.wd.mlflow_uri,
        "xfer-drift",
        run_name=report.report_id,
        tags={
            "xfer.drift.status": report.status,
            "xfer.reference_version": report.reference_version,
        },
        artifact_root=ctx.wd.mlflow_artifacts,
    ) as run:
        run.log_metrics(0, {"drift": float(report.drift), "window_size": float(report.window_size)})
        if report.accuracy is not None:
            run.log_metrics(0, _estimate_metrics(report.accuracy))
        dump = report.evidently.get("snapshot_dump")
        for path in sorted(out_dir.iterdir()):  # not the workspace's ~1 MB reloadable copy
            if str(path) != dump:
                run.log_artifact(path, f"report/{path.name}" if path.is_dir() else "report")
    if report.accuracy is not None:
        _log_estimate_series(ctx, report.reference_version, report.accuracy)
    return run.run_id


def _estimate_metrics(est: AccuracyEstimate) -> dict[str, float]:
    return {
        "estimated_accuracy": est.accuracy,
        "estimated_accuracy_low": est.low,
        "estimated_accuracy_high": est.high,
        "estimated_accuracy_ac": est.average_confidence,
        "estimated_accuracy_doc": est.doc,
    }


def _log_estimate_series(ctx: Context, version: str, est: AccuracyEstimate) -> None:
    """One point of the estimate on the version's own run: its MLflow page charts the series."""
    from xferlib.registry.series import log_version_metrics

    name = ctx.params.registry.model_name
    log_version_metrics(ctx.wd.mlflow_uri, name, version, _estimate_metrics(est))
