"""What a training run and a retrain share: the tracked MLflow run, the model, the fit, the splits.

Both end in `gate.register_and_gate`; these are the steps before it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from xferlib.config import FinetuneParams
from xferlib.context import Context, write_json
from xferlib.data.imageset import ImageSet
from xferlib.workdir import Workdir

if TYPE_CHECKING:
    from xferlib.finetune import TrainResult
    from xferlib.models import Classifier
    from xferlib.registry.runs import Tracker

EXPERIMENT = "xfer"


@contextlib.contextmanager
def open_run(ctx: Context, run_name: str, tags: dict[str, str]) -> Iterator[Tracker]:
    """An MLflow run with the flattened params, params.yaml, dvc.lock and the system logged."""
    from xferlib.registry.runs import Tracker, system_info

    sysinfo = {f"xfer.system.{k}": v for k, v in system_info().items()}
    with Tracker.start(
        ctx.wd.mlflow_uri,
        EXPERIMENT,
        run_name=run_name,
        tags={**tags, **sysinfo},
        artifact_root=ctx.wd.mlflow_artifacts,
    ) as run:
        run.log_params(ctx.params.flat())
        for path in (ctx.wd.params_file, ctx.wd.dvc_lock, ctx.wd.dvc_yaml):
            if path.exists():
                run.log_artifact(path, "config")
        yield run


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


def log_learning_curves(run: Tracker, result: TrainResult, model_dir: Path) -> None:
    """The fit's learning curves beside the model and in the run (`plots/`); the per-epoch
    metrics themselves are already charted by MLflow from `epoch_logger`."""
    from xferlib.evaluate import plot_learning_curves

    path = Workdir.learning_curves(model_dir)
    plot_learning_curves(result.history, path)
    run.log_artifact(path, "plots")


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
    """`finetune.fine_tune` with the work dir's feature cache; with `semi_supervised:
    pseudo_label`, teacher -> pseudo-labels -> student over the dataset's unlabelled images (the
    kept model's TrainResult is returned; the pseudo-labels go to model/semi.json)."""
    from xferlib.finetune import fine_tune

    if cfg.semi_supervised == "none":
        return fine_tune(model, train, val, cfg, feature_cache=ctx.wd.feature_cache, **kw)
    from xferlib.data.splits import load_unlabelled
    from xferlib.finetune.semi import self_train

    ds = ctx.wd.dataset(ctx.params.data.dataset)
    pool = load_unlabelled(ds, ctx.wd.prepared, cfg.pseudo_pool, cfg.seed)
    res = self_train(model, train, pool, val, cfg, **kw)
    write_json(ctx.wd.model_dir / "semi.json", res.to_dict())
    return res.final


def load_champion_model(ctx: Context) -> tuple[Classifier, str]:
    """The champion's classifier (weights verified against the registered hash) and its version."""
    from xferlib.registry import champion_version, load_predictor

    name = ctx.params.registry.model_name
    version = champion_version(ctx.wd.mlflow_uri, name)
    if version is None:
        raise LookupError(f"model {name!r} has no champion yet; run `xfer train` first")
    pred = load_predictor(f"models:/{name}/{version}", ctx.wd.mlflow_uri)
    return cast("Classifier", pred.model), str(version)
