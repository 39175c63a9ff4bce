"""Retrain: warm-start from the champion on labelled feedback + a replay of the old training set.

The gate compares challenger and champion on the old ID holdout *and* on the feedback's own
holdout: both must hold. The reference moves to the feedback data when the challenger wins.
It shares the run, the fit and the gate with the train stage through `xferlib.release`.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from xferlib.context import Context, PathLike, write_json
from xferlib.data.imageset import ImageSet
from xferlib.release.gate import GateInputs, GateResult, register_and_gate
from xferlib.release.run import (
    build_model,
    epoch_logger,
    fit,
    load_champion_model,
    load_split,
    log_learning_curves,
    open_run,
)
from xferlib.stages.results import RetrainResult

if TYPE_CHECKING:
    from xferlib.config import FinetuneParams
    from xferlib.finetune import TrainResult
    from xferlib.models import Classifier
    from xferlib.registry.runs import Tracker


@dataclasses.dataclass(frozen=True)
class _Feedback:
    """A feedback dataset, ingested and split: train / val / its own holdout (test)."""

    name: str
    data_version: str
    train: ImageSet
    val: ImageSet
    test: ImageSet


def retrain(
    workdir: PathLike,
    feedback: Path,
    params_path: str | None = None,
    *,
    drift_report: str | None = None,
    flow_run_id: str | None = None,
    feedback_id: str | None = None,
) -> RetrainResult:
    """Warm-start from the champion on labelled feedback + a replay of the old training set, then gate."""
    from xferlib import versioning

    ctx = Context.load(workdir, params_path)
    fb = _ingest_feedback(ctx, Path(feedback), feedback_id)
    champion, champ_version = load_champion_model(ctx)
    source = versioning.data_version(ctx.wd.root, ctx.wd.dataset(ctx.params.data.dataset))
    data_version = f"{fb.data_version}+{source}"
    lineage = {
        "xfer.data_version": data_version,
        "xfer.parent_version": champ_version,
        "xfer.drift_report": drift_report or "",
        "xfer.flow_run_id": flow_run_id or "",
    }
    result, gate = _fit_and_gate(ctx, _start_model(ctx, champion, fb), fb, data_version, lineage)
    return RetrainResult(fb.name, data_version, champ_version, result, gate)


def _ingest_feedback(ctx: Context, feedback: Path, feedback_id: str | None) -> _Feedback:
    """Check, ingest, version (DVC) and split the feedback; refuse what the gate could not trust."""
    name = f"feedback-{feedback_id or time.strftime('%Y%m%d-%H%M%S')}"
    check_feedback_classes(ctx, feedback)  # before ingest: a bad request versions nothing
    data_version = _ingest(ctx, feedback, name)
    if data_version is None:
        raise ValueError(
            f"feedback {feedback} holds no valid labelled image; see {ctx.wd.quarantine}"
        )
    check_feedback_disjoint(ctx, name)  # before any feedback image is trained on or scored
    fb_dir = ctx.wd.prepared_feedback(name)
    _prepare_feedback(ctx, name, fb_dir)
    train, val, test = (
        load_split(ctx, s, dataset=name, prepared=fb_dir) for s in ("train", "val", "test")
    )
    return _Feedback(name, data_version, train, val, test)


def _ingest(ctx: Context, src: Path, dataset: str) -> str | None:
    """The feedback as dataset `dataset`, DVC-tracked and pushed; its data version (None: no
    image was accepted, so nothing was versioned)."""
    from xferlib.data.versioned import ingest_and_version

    _, version = ingest_and_version(
        ctx.wd.root,
        src,
        ctx.wd.dataset(dataset),
        ctx.wd.quarantine,
        ctx.params.data,
        source=f"feedback:{src}",
    )
    return version


def _start_model(ctx: Context, champion: Classifier, fb: _Feedback) -> Classifier:
    """The champion itself (warm start) or a fresh model of its shape; BN stats adapted if asked."""
    rp = ctx.params.retrain
    model = champion if rp.warm_start else build_model(ctx, champion.head.out_features)
    if rp.bn_adapt:
        from xferlib.finetune import bn_adapt

        bn_adapt(model, fb.train)
    return model


def _fit_and_gate(
    ctx: Context, model: Classifier, fb: _Feedback, data_version: str, lineage: dict[str, str]
) -> tuple[TrainResult, GateResult]:
    """Fit on replay + feedback (validated on both), save, then register and gate."""
    from xferlib.data.splits import class_names
    from xferlib.models.io import save_model

    cfg = _retrain_config(ctx)
    classes = class_names(ctx.wd.prepared)
    out_dir = ctx.wd.retrain_model_dir(fb.name)
    train = ImageSet.concat([_replay(ctx, ctx.params.retrain.replay_size), fb.train])
    val = ImageSet.concat([load_split(ctx, "val"), fb.val])
    with open_run(ctx, run_name=f"retrain-{fb.name}", tags=lineage) as run:
        result = fit(ctx, model, train, val, cfg, on_epoch=epoch_logger(run))
        extra = {"data_version": data_version, "strategy": cfg.strategy}
        save_model(model, out_dir, classes, extra)
        log_learning_curves(run, result, out_dir)
        _log_drift_report(ctx, run, lineage["xfer.drift_report"])
        inputs = GateInputs(fb.test, load_split(ctx, "test"), _reference_images(ctx, fb))
        gate = register_and_gate(
            ctx, run, model, classes, inputs, model_dir=out_dir, lineage=lineage
        )
    return result, gate


def _log_drift_report(ctx: Context, run: Tracker, report_id: str) -> None:
    """The drift report that asked for this retrain (HTML + JSON), in the retrain's own run, so
    its MLflow page shows why it exists. A report id from elsewhere (not in this work dir's
    reports) stays a tag only."""
    found = sorted(ctx.wd.reports.glob(f"*/drift-{report_id}.json")) if report_id else []
    if found:
        run.log_artifact(found[-1].parent, "drift_report")


def _retrain_config(ctx: Context) -> FinetuneParams:
    rp = ctx.params.retrain
    # the retrain's unlabelled images are the drifted windows, which it does not read yet: it
    # fine-tunes on its labelled feedback (and replay) alone, whatever `semi_supervised` says
    return dataclasses.replace(
        ctx.params.finetune, strategy=rp.strategy, epochs=rp.epochs, semi_supervised="none"
    )


def _reference_images(ctx: Context, fb: _Feedback) -> ImageSet:
    """Held-out images of the domain the new model is meant for.

    Held-out, not training images: on its own training images a model is over-confident, so a
    reference built from them makes every fresh window look drifted in `max_softmax`.
    """
    parts = [fb.val, fb.test]
    if ctx.params.drift.reference == "all":
        parts += [load_split(ctx, "val"), load_split(ctx, "test")]
    return ImageSet.concat(parts)


def check_feedback_classes(ctx: Context, feedback: Path) -> None:
    """Refuse feedback whose class folders are not classes of the champion, in one line."""
    from urllib.parse import unquote

    from xferlib.data.splits import read_label_map

    if not feedback.is_dir():
        return  # an archive or a missing path: ingest and _prepare_feedback check it
    labels = read_label_map(ctx.wd.prepared)
    folders = {
        unquote(d.name) for d in feedback.iterdir() if d.is_dir() and not d.name.startswith(".")
    }
    unknown = sorted(folders - set(labels))
    if unknown:
        raise ValueError(
            f"feedback classes {unknown} are not classes of the champion {sorted(labels)}; "
            "rename or remove those folders"
        )


def check_feedback_disjoint(ctx: Context, dataset: str) -> None:
    """Refuse feedback sharing an image with the ID holdout (the test split the gate scores).

    Identity is the content sha256 that ingest gives every image (`xferlib.data.validate`: the
    hash of the normalised pixels), so a renamed or re-encoded copy is caught too. A holdout image
    in the feedback would be trained on and then credited to the challenger on the holdout.
    """
    from xferlib.data.shards import read_manifest
    from xferlib.data.splits import read_splits

    feedback = read_manifest(ctx.wd.dataset(dataset))
    splits = read_splits(ctx.wd.prepared)
    holdout = set(splits.loc[splits["split"] == "test", "sha256"])
    overlap = feedback[feedback["sha256"].isin(holdout)].drop_duplicates("sha256")
    if len(overlap):
        ids = [
            f"{Path(str(p)).name} (sha256 {h[:12]})"
            for p, h in zip(overlap["path"], overlap["sha256"], strict=True)
        ]
        raise ValueError(
            f"{len(overlap)} feedback image(s) of {dataset} are also in the ID holdout (test split), "
            f"e.g. {', '.join(ids[:3])}; remove them from the feedback folder and retrain"
        )


def _prepare_feedback(ctx: Context, name: str, out: Path) -> None:
    """The feedback's own splits (a 30 % holdout carved per class) with the champion's label map."""
    from xferlib.data.shards import read_manifest
    from xferlib.data.splits import LABEL_MAP, SPLITS, make_splits, read_label_map

    labels = read_label_map(ctx.wd.prepared)
    manifest: pd.DataFrame = read_manifest(ctx.wd.dataset(name))
    unknown = sorted(set(manifest["label"].dropna()) - set(labels))
    if unknown:
        raise ValueError(
            f"feedback labels {unknown} are not classes of the champion {sorted(labels)}"
        )
    manifest = manifest.assign(split=None)  # the feedback's own holdout is carved here
    splits = make_splits(manifest, 0.3, None, ctx.params.prepare.seed)
    out.mkdir(parents=True, exist_ok=True)
    splits.to_parquet(out / SPLITS, index=False)
    write_json(out / LABEL_MAP, labels)


def _replay(ctx: Context, size: int) -> ImageSet:
    """A class-stratified random sample of the old training set, against forgetting."""
    import torch

    old = load_split(ctx, "train")
    if size >= len(old):
        return old
    g = torch.Generator().manual_seed(ctx.params.prepare.seed)
    return old.subset(torch.randperm(len(old), generator=g)[:size])
