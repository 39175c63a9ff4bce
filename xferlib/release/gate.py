"""Registration as challenger, the promotion gate, and the version's drift reference.

Order matters for "no half-written registry state": the run is fully logged (metrics, artifacts,
model + weights hash) before a version exists; the version is registered as `challenger` with gate
status `pending`; only after both evaluations does `apply_decision` move `champion`; the drift
reference is stored with every registered version so the reference moves with the champion.
"""

from __future__ import annotations

import platform
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from xferlib.context import Context, write_json
from xferlib.data.imageset import ImageSet
from xferlib.registry.promotion import PromotionDecision
from xferlib.workdir import Workdir

if TYPE_CHECKING:
    from xferlib.evaluate import EvalResult
    from xferlib.models import Classifier
    from xferlib.registry import CandidateMetrics
    from xferlib.registry.runs import Tracker


def evaluate_on(
    model: Classifier, classes: list[str], sets: dict[str, ImageSet], out_dir: Path
) -> dict[str, EvalResult]:
    """Evaluate on each named set; write `<name>.json` + plots under out_dir; return the results."""
    from xferlib.evaluate import evaluate, write_eval
    from xferlib.models.predictor import Predictor

    results: dict[str, EvalResult] = {}
    predictor = Predictor.from_classifier(model, classes)
    for name, data in sets.items():
        res = evaluate(predictor, data)
        write_eval(res, out_dir / f"{name}.json", out_dir / f"plots-{name}")
        results[name] = res
    return results


@dataclass(frozen=True)
class GateResult:
    """A registered version and the gate's verdict on it (also saved as `<model_dir>/gate.json`)."""

    model_name: str
    version: str
    run_id: str
    decision: PromotionDecision
    accuracy: dict[str, float]  # "holdout" (and "new" when the version had new data)
    champion_accuracy: dict[str, float | None] | None  # None: there was no champion to compare
    reference: str

    @property
    def promoted(self) -> bool:
        return self.decision.action == "promote"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "decision": self.decision.to_dict()}

    @staticmethod
    def from_dict(raw: dict[str, Any]) -> GateResult:
        return GateResult(
            model_name=raw["model_name"],
            version=str(raw["version"]),
            run_id=raw["run_id"],
            decision=PromotionDecision.from_dict(raw["decision"]),
            accuracy=dict(raw["accuracy"]),
            champion_accuracy=raw["champion_accuracy"],
            reference=raw["reference"],
        )


@dataclass(frozen=True)
class GateInputs:
    """What a registration is judged on: the new labelled data (None: none separate from the
    holdout), the ID holdout, and the held-out images its drift reference is built from."""

    new: ImageSet | None
    holdout: ImageSet
    reference_images: ImageSet

    def sets(self) -> dict[str, ImageSet]:
        if self.new is None:
            return {"holdout": self.holdout}
        return {"new": self.new, "holdout": self.holdout}


def register_and_gate(
    ctx: Context,
    run: Tracker,
    model: Classifier,
    classes: list[str],
    inputs: GateInputs,
    *,
    model_dir: Path,
    lineage: dict[str, str],
) -> GateResult:
    """Log evaluation + model, register a challenger, compare with the champion, apply the decision.

    `inputs.new=None` (a first train, a retrain without feedback): no data separate from the
    holdout, so the gate judges the version on the holdout alone and its reasons say so.
    """
    from xferlib import registry

    p, uri = ctx.params, ctx.wd.mlflow_uri
    name, metric = p.registry.model_name, p.registry.primary_metric
    ours = _log_evaluation(run, model, classes, inputs, model_dir)
    version = str(registry.register_candidate(uri, name, run.run_id, tags=lineage))
    champ_metrics = _champion_metrics(ctx, version, classes, inputs, Workdir.eval_dir(model_dir))
    ref_dir = _store_reference(ctx, run, model, inputs.reference_images, version)
    decision = registry.decide_promotion(
        _candidate(version, ours, metric), champ_metrics, p.registry
    )
    registry.apply_decision(uri, name, decision)
    _alert(ctx, decision, name, version, run)
    out = GateResult(
        model_name=name,
        version=version,
        run_id=run.run_id,
        decision=decision,
        accuracy={k: v.accuracy for k, v in ours.items()},
        champion_accuracy=None
        if champ_metrics is None
        else {"new": champ_metrics.new_metric, "holdout": champ_metrics.holdout_metric},
        reference=str(ref_dir),
    )
    write_json(ctx.wd.gate_json(model_dir), out.to_dict())
    return out


def _log_evaluation(
    run: Tracker,
    model: Classifier,
    classes: list[str],
    inputs: GateInputs,
    model_dir: Path,
) -> dict[str, EvalResult]:
    """Evaluate on the gate's sets, log metrics + eval artifacts + the model to the run."""
    eval_dir = Workdir.eval_dir(model_dir)
    ours = evaluate_on(model, classes, inputs.sets(), eval_dir)
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
    # one real held-out image, uint8 (1, H, W, 3): the MLflow model's input layout
    example = inputs.holdout.images[:1].permute(0, 2, 3, 1).numpy()
    run.log_model(model_dir, example)
    return ours


def _champion_metrics(
    ctx: Context, version: str, classes: list[str], inputs: GateInputs, eval_dir: Path
) -> CandidateMetrics | None:
    """The champion's figures on the same sets (None: no champion, or this version is it)."""
    from xferlib import registry

    uri, name = ctx.wd.mlflow_uri, ctx.params.registry.model_name
    champ = registry.champion_version(uri, name)
    if champ is None or str(champ) == version:
        return None
    champ_model = registry.load_predictor(f"models:/{name}/{champ}", uri).model
    theirs = evaluate_on(
        cast("Classifier", champ_model), classes, inputs.sets(), eval_dir / "champion"
    )
    return _candidate(str(champ), theirs, ctx.params.registry.primary_metric)


def _store_reference(
    ctx: Context, run: Tracker, model: Classifier, images: ImageSet, version: str
) -> Path:
    """The version's drift reference, next to the work dir's others and in its MLflow run."""
    from xferlib.drift import build_model_reference

    name = ctx.params.registry.model_name
    ref_dir = ctx.wd.reference(name, version)
    build_model_reference(
        ref_dir, model, images, model_name=name, model_version=version, cfg=ctx.params.drift
    )
    run.log_artifact(ref_dir, "reference")
    return ref_dir


def _candidate(version: str, results: dict[str, EvalResult], metric: str) -> CandidateMetrics:
    from xferlib.registry import CandidateMetrics

    new = float(getattr(results["new"], metric)) if "new" in results else None
    return CandidateMetrics(version, new, float(getattr(results["holdout"], metric)))


def _alert(
    ctx: Context, decision: PromotionDecision, name: str, version: str, run: Tracker
) -> None:
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
