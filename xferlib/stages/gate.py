"""The tracked run, registration as challenger, the promotion gate, and the version's reference.

Order matters for "no half-written registry state": the run is fully logged (metrics, artifacts,
model + weights hash) before a version exists; the version is registered as `challenger` with gate
status `pending`; only after both evaluations does `apply_decision` move `champion`; the drift
reference is stored with every registered version so the reference moves with the champion.
"""

from __future__ import annotations

import contextlib
import platform
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from xferlib.data.imageset import ImageSet
from xferlib.stages.context import Context, write_json

EXPERIMENT = "xfer"


@contextlib.contextmanager
def open_run(ctx: Context, run_name: str, tags: dict[str, str]) -> Iterator[Any]:
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
        for name in ("params.yaml", "dvc.lock", "dvc.yaml"):
            if (ctx.wd.root / name).exists():
                run.log_artifact(ctx.wd.root / name, "config")
        yield run


def evaluate_on(
    model: Any, classes: list[str], sets: dict[str, ImageSet], out_dir: Path
) -> dict[str, Any]:
    """Evaluate on each named set; write `<name>.json` + plots under out_dir; return the results."""
    from xferlib.evaluate import evaluate, write_eval
    from xferlib.models.predictor import Predictor

    results, predictor = {}, Predictor.from_classifier(model, classes)
    for name, data in sets.items():
        res = evaluate(predictor, data)
        write_eval(res, out_dir / f"{name}.json", out_dir / f"plots-{name}")
        results[name] = res
    return results


def load_champion_model(ctx: Context) -> tuple[Any, str]:
    """The champion's classifier (weights verified against the registered hash) and its version."""
    from xferlib.registry import champion_version, load_predictor

    name = ctx.params.registry.model_name
    version = champion_version(ctx.wd.mlflow_uri, name)
    if version is None:
        raise LookupError(f"model {name!r} has no champion yet; run `xfer train` first")
    pred = load_predictor(f"models:/{name}/{version}", ctx.wd.mlflow_uri)
    return pred.model, str(version)


def register_and_gate(
    ctx: Context,
    run: Any,
    model: Any,
    classes: list[str],
    *,
    new: ImageSet | None,
    holdout: ImageSet,
    model_dir: Path,
    reference_images: ImageSet,
    lineage: dict[str, str],
) -> dict[str, Any]:
    """Log evaluation + model, register a challenger, compare with the champion, apply the decision.

    `new=None` (a first train, a retrain without feedback): no data separate from the holdout, so
    the gate judges the version on the holdout alone and its reasons say so.
    """
    from xferlib import registry
    from xferlib.stages import monitor

    p, uri = ctx.params, ctx.wd.mlflow_uri
    metric = p.registry.primary_metric
    eval_dir = model_dir / "eval"
    sets = {"holdout": holdout} if new is None else {"new": new, "holdout": holdout}
    ours = evaluate_on(model, classes, sets, eval_dir)
    run.log_metrics(
        10_000,
        {
            f"{k}_{m}": getattr(v, m)
            for k, v in ours.items()
            for m in ("accuracy", "macro_f1", "ece")
        },
    )
    run.flush()
    run.log_artifact(eval_dir, "eval")
    example = holdout.images[:1].numpy()  # uint8 (1, 3, H, W): the logged model preprocesses itself
    run.log_model(model_dir, model, example, pytorch_flavor=p.registry.pytorch_flavor)
    name = p.registry.model_name
    version = registry.register_candidate(uri, name, run.run_id, tags=lineage)
    champ = registry.champion_version(uri, name)
    champ_metrics = None
    if champ is not None and str(champ) != str(version):
        champ_model = registry.load_predictor(f"models:/{name}/{champ}", uri).model
        theirs = evaluate_on(champ_model, classes, sets, eval_dir / "champion")
        champ_metrics = _candidate(str(champ), theirs, metric)
    challenger = _candidate(str(version), ours, metric)
    ref_dir = monitor.build_reference(ctx, model, reference_images, name, str(version))
    run.log_artifact(ref_dir, "reference")
    decision = registry.decide_promotion(challenger, champ_metrics, p.registry)
    registry.apply_decision(uri, name, decision)
    _alert(ctx, decision, name, str(version), run)
    out = {
        "model_name": name,
        "version": str(version),
        "run_id": run.run_id,
        "decision": decision.to_dict(),
        "accuracy": {k: v.accuracy for k, v in ours.items()},
        "champion_accuracy": None
        if champ_metrics is None
        else {"new": champ_metrics.new_metric, "holdout": champ_metrics.holdout_metric},
        "reference": str(ref_dir),
    }
    write_json(model_dir / "gate.json", out)
    return out


def _candidate(version: str, results: dict[str, Any], metric: str) -> Any:
    from xferlib.registry import CandidateMetrics

    new = getattr(results["new"], metric) if "new" in results else None
    return CandidateMetrics(version, new, getattr(results["holdout"], metric))


def _alert(ctx: Context, decision: Any, name: str, version: str, run: Any) -> None:
    from xferlib.alerts import Alert, AlertSink

    kind = "promoted" if decision.action == "promote" else "rejected"
    AlertSink(ctx.wd.alerts).send(
        Alert(
            kind=kind,
            model_name=name,
            model_version=version,
            run_url=run.url,
            message=f"{name} v{version} {kind}: " + "; ".join(decision.reasons),
            details={"host": platform.node()},
            dedup_key=f"{kind}:{name}:{version}",
        )
    )
