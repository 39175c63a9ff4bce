"""Training stages: train (+ register and gate), evaluate, retrain from the champion."""

from __future__ import annotations

import dataclasses
import functools
import os
import time
from pathlib import Path
from typing import Any

import pandas as pd

from xferlib.data.imageset import ImageSet
from xferlib.stages.context import Context, read_json, write_json

PathLike = str | os.PathLike[str] | None


def load_split(
    ctx: Context, split: str, dataset: str | None = None, prepared: Path | None = None
) -> ImageSet:
    """The images of one prepared split as an ImageSet (labels through the label map)."""
    from xferlib.data.shards import load_imageset, read_manifest

    prepared = prepared or ctx.wd.prepared
    splits = pd.read_parquet(prepared / "splits.parquet")
    label_map = read_json(prepared / "label_map.json")
    ds = ctx.wd.dataset(dataset or ctx.params.data.dataset)
    manifest = read_manifest(ds).drop_duplicates("sha256").set_index("sha256")
    rows = manifest.loc[splits.loc[splits["split"] == split, "sha256"]].reset_index()
    unknown = sorted(set(rows["label"]) - set(label_map))
    if unknown:
        raise ValueError(
            f"labels {unknown} are not in the label map {sorted(label_map)}; re-run prepare"
        )
    return load_imageset(ds, rows, label_map=label_map)


def build_model(ctx: Context, num_classes: int) -> Any:
    """The backbone of params + a new head; random inits come from finetune.seed, so every
    torchrun rank (and every rerun) starts from the same weights."""
    import torch

    from xferlib.models import Classifier, create_backbone

    m, ft = ctx.params.model, ctx.params.finetune
    pretrained = m.pretrained and ft.strategy != "scratch"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(ft.seed)
        backbone = create_backbone(
            m.backbone, pretrained=pretrained, weights=m.weights, image_size=m.image_size
        )
        return Classifier(backbone, num_classes)


def _fit(
    ctx: Context, model: Any, train: ImageSet, val: ImageSet | None, cfg: Any, **kw: Any
) -> Any:
    from xferlib.finetune import fine_tune

    return fine_tune(model, train, val, cfg, feature_cache=ctx.wd.cache / "features", **kw)


def _epoch_logger(run: Any) -> Any:
    """Per-epoch metrics to the run (numbers only; the tracker batches the writes)."""

    def log(epoch: int, row: dict[str, Any]) -> None:
        run.log_metrics(
            epoch,
            {
                k: float(v)
                for k, v in row.items()
                if isinstance(v, int | float) and not isinstance(v, bool)
            },
        )
        run.flush()

    return log


def _is_main_rank() -> bool:
    """False only inside a torchrun/DDP worker whose rank is not 0 (see stages.distributed)."""
    from xferlib.finetune import World

    return World.current().is_main


def train(
    workdir: PathLike,
    params_path: str | None = None,
    *,
    resume: bool = False,
    register: bool = True,
    tags: dict[str, str] | None = None,
) -> dict[str, Any]:
    """`dvc.yaml` stage train; with `register`, also the tracked run, registration, gate and reference.

    Also the body of every torchrun worker (`stages.distributed`): rank 0 runs all of it, the other
    ranks only fit their share of each batch.
    """
    from xferlib import versioning
    from xferlib.models.io import save_model

    ctx = Context.load(workdir, params_path)
    label_map = read_json(ctx.wd.prepared / "label_map.json")
    classes = sorted(label_map, key=label_map.get)
    train_set, val_set = load_split(ctx, "train"), load_split(ctx, "val")
    model = build_model(ctx, len(classes))
    fit = functools.partial(
        _fit, ctx, model, train_set, val_set, ctx.params.finetune,
        checkpoint_dir=ctx.wd.checkpoints, resume=resume,
    )  # fmt: skip
    if not _is_main_rank():  # a torchrun worker other than rank 0: fit its shard, write nothing
        return {"train": fit().to_dict(), "registered": False}
    data_version = str(
        versioning.data_version(ctx.wd.root, ctx.wd.dataset(ctx.params.data.dataset))
    )
    extra = {"data_version": data_version, "strategy": ctx.params.finetune.strategy}
    if not register:
        result = fit()
        save_model(model, ctx.wd.model_dir, classes, extra)
        write_json(ctx.wd.model_dir / "train.json", result.to_dict())
        return {"train": result.to_dict(), "data_version": data_version, "registered": False}

    from xferlib.stages import gate

    with gate.open_run(
        ctx,
        run_name=f"train-{ctx.params.finetune.strategy}",
        tags={**(tags or {}), "xfer.data_version": data_version},
    ) as run:
        result = fit(on_epoch=_epoch_logger(run))
        save_model(model, ctx.wd.model_dir, classes, extra)
        write_json(ctx.wd.model_dir / "train.json", result.to_dict())
        holdout = load_split(ctx, "test")
        outcome = gate.register_and_gate(
            ctx,
            run,
            model,
            classes,
            new=None,  # a first train has no data apart from its holdout: judged on it alone
            holdout=holdout,
            model_dir=ctx.wd.model_dir,
            reference_images=ImageSet.concat([val_set, holdout]),
            lineage={"xfer.data_version": data_version, **(tags or {})},
        )
    return {"train": result.to_dict(), "data_version": data_version, "registered": True, **outcome}


def evaluate(workdir: PathLike, params_path: str | None = None) -> dict[str, Any]:
    """`dvc.yaml` stage evaluate: metrics/eval.json + plots for the trained model on the test split."""
    from xferlib.evaluate import evaluate as run_eval
    from xferlib.evaluate import write_eval
    from xferlib.models.io import load_model
    from xferlib.models.predictor import Predictor

    ctx = Context.load(workdir, params_path)
    model, meta = load_model(ctx.wd.model_dir)
    result = run_eval(
        Predictor.from_classifier(model, meta["class_names"]), load_split(ctx, "test")
    )
    write_eval(result, ctx.wd.metrics / "eval.json", ctx.wd.plots)
    return result.to_dict()


def retrain(
    workdir: PathLike,
    feedback: Path,
    params_path: str | None = None,
    *,
    drift_report: str | None = None,
    flow_run_id: str | None = None,
    feedback_id: str | None = None,
) -> dict[str, Any]:
    """Warm-start from the champion on labelled feedback + a replay of the old training set, then gate.

    The gate compares challenger and champion on the old ID holdout *and* on the feedback's own
    holdout: both must hold. The reference moves to the feedback data when the challenger wins.
    """
    from xferlib import versioning
    from xferlib.stages import gate
    from xferlib.stages.data import ingest, make_splits

    ctx = Context.load(workdir, params_path)
    rp, p = ctx.params.retrain, ctx.params
    name = f"feedback-{feedback_id or time.strftime('%Y%m%d-%H%M%S')}"
    _check_feedback_classes(ctx, Path(feedback))  # before ingest: a bad request versions nothing
    ingested = ingest(ctx.wd.root, feedback, dataset=name, source=f"feedback:{feedback}")
    if not ingested.get("data_version"):
        raise ValueError(
            f"feedback {feedback} holds no valid labelled image; see {ctx.wd.quarantine}"
        )
    check_feedback_disjoint(ctx, name)  # before any feedback image is trained on or scored
    fb_dir = ctx.wd.root / "prepared-feedback" / name
    _prepare_feedback(ctx, name, fb_dir, make_splits)
    fb_train, fb_val, fb_test = (
        load_split(ctx, s, dataset=name, prepared=fb_dir) for s in ("train", "val", "test")
    )
    replay = _replay(ctx, rp.replay_size)
    champion, champ_version = gate.load_champion_model(ctx)
    model = champion if rp.warm_start else build_model(ctx, champion.head.out_features)
    if rp.bn_adapt:
        from xferlib.finetune import bn_adapt

        bn_adapt(model, fb_train)
    cfg = dataclasses.replace(p.finetune, strategy=rp.strategy, epochs=rp.epochs)
    data_version = f"{ingested['data_version']}+{versioning.data_version(ctx.wd.root, ctx.wd.dataset(p.data.dataset))}"
    lineage = {
        "xfer.data_version": data_version,
        "xfer.parent_version": str(champ_version),
        "xfer.drift_report": drift_report or "",
        "xfer.flow_run_id": flow_run_id or "",
    }
    classes = read_json(ctx.wd.prepared / "label_map.json")
    classes = sorted(classes, key=classes.get)
    out_dir = ctx.wd.root / "models" / name
    from xferlib.models.io import save_model

    with gate.open_run(ctx, run_name=f"retrain-{name}", tags=lineage) as run:
        result = _fit(
            ctx,
            model,
            ImageSet.concat([replay, fb_train]),
            ImageSet.concat([load_split(ctx, "val"), fb_val]),
            cfg,
            on_epoch=_epoch_logger(run),
        )
        save_model(
            model, out_dir, classes, {"data_version": data_version, "strategy": cfg.strategy}
        )
        outcome = gate.register_and_gate(
            ctx,
            run,
            model,
            classes,
            new=fb_test,
            holdout=load_split(ctx, "test"),
            model_dir=out_dir,
            reference_images=_reference_images(ctx, fb_val, fb_test),
            lineage=lineage,
        )
    return {
        "feedback_dataset": name,
        "data_version": data_version,
        "parent_version": champ_version,
        "train": result.to_dict(),
        **outcome,
    }


def _reference_images(ctx: Context, fb_val: ImageSet, fb_test: ImageSet) -> ImageSet:
    """Held-out images of the domain the new model is meant for.

    Held-out, not training images: on its own training images a model is over-confident, so a
    reference built from them makes every fresh window look drifted in `max_softmax`.
    """
    parts = [fb_val, fb_test]
    if ctx.params.drift.reference == "all":
        parts += [load_split(ctx, "val"), load_split(ctx, "test")]
    return ImageSet.concat(parts)


def _check_feedback_classes(ctx: Context, feedback: Path) -> None:
    """Refuse feedback whose class folders are not classes of the champion, in one line."""
    from urllib.parse import unquote

    if not feedback.is_dir():
        return  # an archive or a missing path: ingest and _prepare_feedback check it
    labels = read_json(ctx.wd.prepared / "label_map.json")
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

    feedback = read_manifest(ctx.wd.dataset(dataset))
    splits = pd.read_parquet(ctx.wd.prepared / "splits.parquet")
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


def _prepare_feedback(ctx: Context, name: str, out: Path, make_splits: Any) -> None:
    from xferlib.data.shards import read_manifest

    labels = read_json(ctx.wd.prepared / "label_map.json")
    manifest = read_manifest(ctx.wd.dataset(name))
    unknown = sorted(set(manifest["label"].dropna()) - set(labels))
    if unknown:
        raise ValueError(
            f"feedback labels {unknown} are not classes of the champion {sorted(labels)}"
        )
    manifest = manifest.assign(split=None)  # the feedback's own holdout is carved here
    splits = make_splits(manifest, 0.3, None, ctx.params.prepare.seed)
    out.mkdir(parents=True, exist_ok=True)
    splits.to_parquet(out / "splits.parquet", index=False)
    write_json(out / "label_map.json", labels)


def _replay(ctx: Context, size: int) -> ImageSet:
    """A class-stratified random sample of the old training set, against forgetting."""
    import torch

    old = load_split(ctx, "train")
    if size >= len(old):
        return old
    g = torch.Generator().manual_seed(ctx.params.prepare.seed)
    return old.subset(torch.randperm(len(old), generator=g)[:size])
