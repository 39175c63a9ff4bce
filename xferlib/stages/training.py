"""Training stages: train (+ register and gate) and evaluate; the helpers `retrain` shares.

The training stage is this module with `retrain.py` (warm start + replay), `gating.py` (the tracked
run, registration, the gate) and `distributed*.py` (torchrun): those import each other, and no
other stage.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from xferlib.config import FinetuneParams
from xferlib.data.imageset import ImageSet
from xferlib.stages.context import Context, write_json
from xferlib.stages.gating import GateInputs, open_run, register_and_gate
from xferlib.stages.results import EvalStageResult, GateResult, TrainStageResult

if TYPE_CHECKING:
    from xferlib.finetune import TrainResult
    from xferlib.models import Classifier
    from xferlib.registry.runs import Tracker

PathLike = str | os.PathLike[str] | None


def load_split(
    ctx: Context, split: str, dataset: str | None = None, prepared: Path | None = None
) -> ImageSet:
    """The images of one prepared split (the source domain's unless `dataset`/`prepared` say)."""
    from xferlib.data.splits import load_split as load

    ds = ctx.wd.dataset(dataset or ctx.params.data.dataset)
    return load(ds, prepared or ctx.wd.prepared, split)


def build_model(ctx: Context, num_classes: int) -> Classifier:
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


def fit(
    ctx: Context,
    model: Classifier,
    train: ImageSet,
    val: ImageSet | None,
    cfg: FinetuneParams,
    **kw: Any,
) -> TrainResult:
    from xferlib.finetune import fine_tune

    return fine_tune(model, train, val, cfg, feature_cache=ctx.wd.feature_cache, **kw)


def epoch_logger(run: Tracker) -> Callable[[int, dict[str, Any]], None]:
    """Per-epoch metrics to the run (numbers only; the tracker batches the writes)."""

    def log(epoch: int, row: dict[str, Any]) -> None:
        numbers = {
            k: float(v)
            for k, v in row.items()
            if isinstance(v, int | float) and not isinstance(v, bool)
        }
        run.log_metrics(epoch, numbers)
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
) -> TrainStageResult:
    """`dvc.yaml` stage train; with `register`, also the tracked run, registration, gate and reference.

    Also the body of every torchrun worker (`stages.distributed`): rank 0 runs all of it, the other
    ranks only fit their share of each batch.
    """
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
    return EvalStageResult(result)
