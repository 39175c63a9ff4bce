"""Evaluation: accuracy, macro-F1, per-class precision/recall, ECE, confusion matrix, and the
files DVC reads (`dvc metrics show` on the JSON, `dvc plots show` on the confusion CSV).

Metrics are computed from the confusion matrix with numpy, so they are checkable by hand and
need no sklearn. ECE uses 15 equal-width confidence bins (Guo et al. 2017).
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from xferlib.atomic import atomic_write_bytes, atomic_write_text, atomic_writer
from xferlib.data.imageset import ImageSet
from xferlib.models.predictor import Predictor

ECE_BINS = 15


@dataclass(frozen=True)
class EvalResult:
    accuracy: float
    macro_f1: float
    ece: float
    n: int
    class_names: list[str]
    per_class: dict[str, dict[str, float]]  # name -> precision, recall, f1, support
    confusion: list[list[int]]  # rows = actual, columns = predicted
    y_true: list[int] = field(default_factory=list, repr=False)  # per sample, for confusion.csv
    y_pred: list[int] = field(default_factory=list, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """Everything but the per-sample predictions."""
        keys = ("accuracy", "macro_f1", "ece", "n", "class_names", "per_class", "confusion")
        return {k: getattr(self, k) for k in keys}


def expected_calibration_error(
    probs: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS
) -> float:
    """Sum over confidence bins of |accuracy - mean confidence|, weighted by the bin's share."""
    if len(labels) == 0:
        return 0.0
    conf = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels
    # bins (lo, hi]; a confidence of exactly 0 joins the first bin
    which = np.clip(np.ceil(conf * bins).astype(int) - 1, 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        mask = which == b
        if mask.any():
            ece += mask.mean() * abs(correct[mask].mean() - conf[mask].mean())
    return float(ece)


def metrics_from_probs(probs: np.ndarray, labels: np.ndarray, class_names: list[str]) -> EvalResult:
    """All metrics from class probabilities (N, C) and integer labels (N,)."""
    k = len(class_names)
    if probs.ndim != 2 or probs.shape[1] != k:
        raise ValueError(f"probs has shape {probs.shape}, expected (N, {k}) for {k} class names")
    pred = probs.argmax(axis=1)
    labels = np.asarray(labels, dtype=np.int64)
    confusion = np.zeros((k, k), dtype=np.int64)
    np.add.at(confusion, (labels, pred), 1)
    tp = np.diag(confusion).astype(float)
    support, predicted = confusion.sum(axis=1), confusion.sum(axis=0)
    precision = np.divide(tp, predicted, out=np.zeros(k), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros(k), where=support > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros(k), where=denom > 0)
    present = support > 0  # macro-F1 over classes that occur in the data
    per_class = {
        name: {
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
        }
        for i, name in enumerate(class_names)
    }
    n = len(labels)
    return EvalResult(
        accuracy=float(tp.sum() / n) if n else 0.0,
        macro_f1=float(f1[present].mean()) if present.any() else 0.0,
        ece=expected_calibration_error(probs, labels),
        n=n,
        class_names=list(class_names),
        per_class=per_class,
        confusion=confusion.tolist(),
        y_true=labels.tolist(),
        y_pred=pred.tolist(),
    )


def evaluate(predictor: Predictor, data: ImageSet) -> EvalResult:
    """Evaluate a model on a labelled ImageSet, through the same Predictor that serves it.

    Build the predictor with `Predictor.from_classifier(model, class_names)` for a model still in
    memory (right after training) or take it from `registry.load_predictor`.
    """
    if data.labels is None:
        raise ValueError("evaluate needs a labelled ImageSet; this one has labels=None")
    probs = predictor.predict_proba(data)
    return metrics_from_probs(probs, data.labels.numpy(), predictor.class_names)


def write_eval(result: EvalResult, metrics_json: Path, plots_dir: Path) -> None:
    """metrics JSON (flat numbers + nested per_class), plots/confusion.png and confusion.csv."""
    metrics_json, plots_dir = Path(metrics_json), Path(plots_dir)
    metrics_json.parent.mkdir(parents=True, exist_ok=True)
    plots_dir.mkdir(parents=True, exist_ok=True)
    flat = {
        "accuracy": result.accuracy,
        "macro_f1": result.macro_f1,
        "ece": result.ece,
        "n": result.n,
    }
    atomic_write_text(metrics_json, json.dumps({**flat, "per_class": result.per_class}, indent=2))
    _write_confusion_csv(result, plots_dir / "confusion.csv")
    _plot_confusion(result, plots_dir / "confusion.png")


def _write_confusion_csv(result: EvalResult, path: Path) -> None:
    """One row per sample (actual, predicted), the input of DVC's confusion template."""
    buf = io.StringIO(newline="")  # csv writes its own \r\n; no newline translation after it
    writer = csv.writer(buf)
    writer.writerow(["actual", "predicted"])
    names = result.class_names
    writer.writerows(
        (names[t], names[p]) for t, p in zip(result.y_true, result.y_pred, strict=True)
    )
    atomic_write_bytes(path, buf.getvalue().encode())


def _plot_confusion(result: EvalResult, path: Path) -> None:
    # Figure + Agg canvas directly: no pyplot global state, no backend switch at import
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    k = len(result.class_names)
    cm = np.asarray(result.confusion)
    side = max(4.0, 0.6 * k + 2)
    fig = Figure(figsize=(side, side))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(k), result.class_names, rotation=45, ha="right")
    ax.set_yticks(range(k), result.class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    ax.set_title(f"accuracy {result.accuracy:.3f}  macro-F1 {result.macro_f1:.3f}  n={result.n}")
    for i in range(k):
        for j in range(k):
            ax.text(
                j,
                i,
                str(cm[i, j]),
                ha="center",
                va="center",
                fontsize=8,
                color="black" if cm[i, j] < cm.max() / 2 else "white",
            )
    fig.tight_layout()
    with atomic_writer(path) as f:
        fig.savefig(f, format="png", dpi=100)


def plot_learning_curves(history: list[dict[str, Any]], path: Path) -> None:
    """Training loss and validation accuracy per epoch (one PNG; phases of lp_ft shaded apart)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    epochs = [int(r["epoch"]) for r in history]
    fig = Figure(figsize=(8, 3.2))
    FigureCanvasAgg(fig)
    loss_ax, acc_ax = fig.subplots(1, 2)
    loss_ax.plot(epochs, [float(r["train_loss"]) for r in history], marker="o")
    loss_ax.set(xlabel="epoch", ylabel="training loss", title="training loss")
    accs = [(e, r["val_accuracy"]) for e, r in zip(epochs, history, strict=True)]
    shown = [(e, float(a)) for e, a in accs if a is not None]
    if shown:
        acc_ax.plot(*zip(*shown, strict=True), marker="o", color="tab:green")
    acc_ax.set(xlabel="epoch", ylabel="validation accuracy", title="validation accuracy")
    for ax in (loss_ax, acc_ax):
        probe = [e for e, r in zip(epochs, history, strict=True) if r.get("phase") == "probe"]
        if probe and len(probe) < len(epochs):  # lp_ft: mark the linear-probe phase
            ax.axvspan(min(probe) - 0.5, max(probe) + 0.5, color="0.9", label="linear probe")
        ax.grid(alpha=0.3)
    if loss_ax.get_legend_handles_labels()[1]:
        loss_ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_writer(path) as f:
        fig.savefig(f, format="png", dpi=100)
