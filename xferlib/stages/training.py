"""Training stages: train (+ register and gate), on one process or several (torchrun), and evaluate.

What train shares with the retrain stage (the tracked run, the model, the fit, the gate) is in
`xferlib.release`; the torchrun worker is `xferlib.distributed_worker`.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from xferlib.context import Context, PathLike, write_json
from xferlib.data.imageset import ImageSet
from xferlib.release.gate import GateInputs, GateResult, register_and_gate
from xferlib.release.run import (
    build_model,
    epoch_logger,
    fit,
    load_split,
    log_learning_curves,
    open_run,
)
from xferlib.stages.results import Distributed, EvalStageResult, TrainStageResult

if TYPE_CHECKING:
    from xferlib.finetune import TrainResult
    from xferlib.models import Classifier
    from xferlib.registry.runs import Tracker


def _is_main_rank() -> bool:
    """False only inside a torchrun/DDP worker whose rank is not 0 (see stages.distributed)."""
    from xferlib.finetune import World

    return World.current().is_main


def train(
    workdir: PathLike,
    params_path: str | None = None,
    *,
    nproc: int | None = None,
    resume: bool = False,
    register: bool = True,
    tags: dict[str, str] | None = None,
) -> TrainStageResult:
    """`dvc.yaml` stage train on `finetune.launch.resolve_nproc` processes: here for one, else
    `launch`. With `register`, also the tracked run, registration, gate and reference, tagged
    with the commit of the pipeline it trained from (or the `dvc exp run` experiment)."""
    from xferlib.finetune import launch as tr

    ctx = Context.load(workdir, params_path)
    n = tr.resolve_nproc(ctx.params, nproc)
    if n > 1:
        tr.check(ctx.params, n)  # refused before anything is committed or started
    tags = {**_commit_pipeline(ctx, "xfer: pipeline before train"), **(tags or {})}
    kw: dict[str, Any] = {"params_path": params_path, "resume": resume, "register": register}
    if n == 1:
        return train_in_process(workdir, tags=tags, **kw)
    return launch(workdir, n, tags=tags, **kw)


def _commit_pipeline(ctx: Context, message: str) -> dict[str, str]:
    """Commit the pipeline's files (`versioning.commit_pipeline`); the tag naming the commit a
    model comes from (or, inside `dvc exp run`, the experiment)."""
    from xferlib import env, versioning

    rev = versioning.commit_pipeline(ctx.wd.root, message)
    if exp := env.dvc_experiment():  # DVC commits the experiment itself, on its own ref
        return {"xfer.dvc_exp": exp}
    return {"xfer.pipeline_rev": rev} if rev else {}


def launch(
    workdir: PathLike,
    nproc: int,
    params_path: str | None = None,
    resume: bool = False,
    *,
    register: bool = True,
    tags: dict[str, str] | None = None,
) -> TrainStageResult:
    """Train on `nproc` torchrun processes of this node and return rank 0's result.

    Refused before anything starts when `finetune.launch.check` says N processes cannot do it
    (`linear_probe` with N > 1, a global batch that does not split)."""
    from xferlib.finetune import launch as tr

    ctx = Context.load(workdir, params_path)
    tr.check(ctx.params, nproc)
    backend = tr.resolve_backend(ctx.params.distributed.backend)
    args = ["--params", str(Path(params_path).resolve())] if params_path else []
    args += (["--resume"] if resume else []) + ([] if register else ["--no-register"])
    args += ["--tags", json.dumps(tags)] if tags else []
    with tempfile.TemporaryDirectory(prefix="xfer-ddp-") as tmp:
        out = Path(tmp) / "rank0.json"
        raw = tr.run(tr.command(ctx.wd.root, nproc, backend, out, args), nproc, out)
    result = TrainStageResult.from_dict(raw)
    return dataclasses.replace(result, distributed=Distributed(nproc, backend))


def train_in_process(
    workdir: PathLike,
    params_path: str | None = None,
    *,
    resume: bool = False,
    register: bool = True,
    tags: dict[str, str] | None = None,
) -> TrainStageResult:
    """The train stage in this process. Also the body of every torchrun worker
    (`xferlib.distributed_worker`): rank 0 runs all of it, the other ranks only fit their share of
    each batch."""
    from xferlib import versioning
    from xferlib.data.splits import class_names

    ctx = Context.load(workdir, params_path)
    classes = class_names(ctx.wd.prepared)
    train_set, val_set = load_split(ctx, "train"), load_split(ctx, "val")
    model = build_model(ctx, len(classes))
    run_fit = functools.partial(
        fit, ctx, model, train_set, val_set, ctx.params.finetune,
        checkpoint_dir=ctx.wd.checkpoints, resume=resume,
    )  # fmt: skip
    if not _is_main_rank():  # a torchrun worker other than rank 0: fit its shard, write nothing
        return TrainStageResult(run_fit(), registered=False)
    dataset_dir = ctx.wd.dataset(ctx.params.data.dataset)
    data_version = str(versioning.data_version(ctx.wd.root, dataset_dir))
    if not register:
        result = _fit_and_save(ctx, model, classes, data_version, run_fit)
        return TrainStageResult(result, registered=False, data_version=data_version)
    lineage = {"xfer.data_version": data_version, **(tags or {})}
    run_name = f"train-{ctx.params.finetune.strategy}"
    with open_run(ctx, run_name, tags={**(tags or {}), "xfer.data_version": data_version}) as run:
        result = _fit_and_save(ctx, model, classes, data_version, run_fit, epoch_logger(run))
        log_learning_curves(run, result, ctx.wd.model_dir)
        gate = _gate_first_train(ctx, run, model, classes, val_set, lineage)
    return TrainStageResult(result, registered=True, data_version=data_version, gate=gate)


def _fit_and_save(
    ctx: Context,
    model: Classifier,
    classes: list[str],
    data_version: str,
    run_fit: Callable[..., TrainResult],
    on_epoch: Callable[[int, dict[str, Any]], None] | None = None,
) -> TrainResult:
    """Fit, then model/ (model.pt + model.json) and model/train.json for `dvc.yaml`."""
    from xferlib.models.io import save_model

    result = run_fit() if on_epoch is None else run_fit(on_epoch=on_epoch)
    extra = {"data_version": data_version, "strategy": ctx.params.finetune.strategy}
    save_model(model, ctx.wd.model_dir, classes, extra)
    write_json(ctx.wd.train_json, result.to_dict())
    return result


def _gate_first_train(
    ctx: Context,
    run: Tracker,
    model: Classifier,
    classes: list[str],
    val_set: ImageSet,
    lineage: dict[str, str],
) -> GateResult:
    """A first train has no data apart from its holdout: it is judged on that alone."""
    holdout = load_split(ctx, "test")
    inputs = GateInputs(None, holdout, reference_images=ImageSet.concat([val_set, holdout]))
    return register_and_gate(
        ctx, run, model, classes, inputs, model_dir=ctx.wd.model_dir, lineage=lineage
    )


def evaluate(workdir: PathLike, params_path: str | None = None) -> EvalStageResult:
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
    write_eval(result, ctx.wd.eval_json, ctx.wd.plots)
    # the last stage commits after its work: metrics and plots too (the pipeline's other files
    # are committed before a stage starts; DVC adds this stage's lock entry after it exits)
    _commit_pipeline(ctx, f"xfer: evaluate, test accuracy {result.accuracy:.4f}")
    return EvalStageResult(result)
