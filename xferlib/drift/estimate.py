"""Label-free accuracy estimates of a window: ATC by default, average confidence and DoC beside it.

ATC (Garg et al., ICLR 2022, "Leveraging unlabeled data to predict out-of-distribution
performance"): on held-out labelled images of the version (its drift reference) choose the
confidence threshold `t` above which the share of images equals the accuracy there; on a window,
the share of images above `t` is the estimate. The score is the max softmax (ATC-MC), which the
monitoring log already holds per image (`max_softmax`), so every past window can be estimated.

Baselines: AC, the mean max softmax (what NannyML's CBPE reduces to for multiclass), and DoC
(Guillory et al., 2021): the reference accuracy minus the drop in mean confidence.

The interval is a percentile bootstrap that resamples the reference rows (the threshold is refit
on each replicate) *and* the window's rows, so it covers both sources of noise.

How far to trust it is measured by bench/harm.py (docs/performance.md): close on clean and
label-shifted windows, optimistic under strong corruption (the model stays confident on images it
now gets wrong), so an estimated drop is a floor under the real one; the interval is a sampling
interval, not a bound on that bias.

Fitted when a version's reference is built (`accuracy.json` beside it, stored with the version);
estimated for each window the monitor checks (the drift report, its MLflow run, the alert).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from xferlib.atomic import atomic_write_text

ACCURACY_FILE = "accuracy.json"
BOOTSTRAP = 200  # replicates of the interval
LEVEL = 0.95


@dataclass(frozen=True)
class AccuracyModel:
    """What a version's held-out images say about its confidence (fit once, stored with it)."""

    threshold: float  # ATC: the share of reference images with max_softmax > threshold = accuracy
    accuracy: float  # on the reference images
    confidence: float  # mean max_softmax on them (for DoC)
    scores: tuple[float, ...]  # the reference max_softmax values, for the bootstrap
    correct: tuple[bool, ...]  # whether each reference image was classified right

    @property
    def n(self) -> int:
        return len(self.scores)

    @staticmethod
    def fit(scores: np.ndarray, correct: np.ndarray) -> AccuracyModel:
        """ATC's threshold on one version's held-out images (max softmax, right or wrong)."""
        s, c = np.asarray(scores, np.float64), np.asarray(correct, bool)
        if s.ndim != 1 or s.shape != c.shape or len(s) == 0:
            raise ValueError(
                f"fit needs one score and one correct flag per image, got {s.shape} and {c.shape}"
            )
        return AccuracyModel(
            _threshold(s, float(c.mean())),
            float(c.mean()),
            float(s.mean()),
            tuple(s.tolist()),
            tuple(c.tolist()),
        )

    def estimate(self, scores: np.ndarray, seed: int = 0) -> AccuracyEstimate:
        """ATC, AC and DoC on a window's max_softmax values, ATC with its bootstrap interval."""
        w = np.asarray(scores, np.float64)
        if w.ndim != 1 or len(w) == 0:
            raise ValueError(f"estimate needs a non-empty 1-D array of max_softmax, got {w.shape}")
        ac = float(w.mean())
        low, high = self._interval(w, np.random.default_rng(seed))
        return AccuracyEstimate(
            method="atc",
            accuracy=float((w > self.threshold).mean()),
            low=low,
            high=high,
            level=LEVEL,
            average_confidence=ac,
            doc=float(np.clip(self.accuracy + ac - self.confidence, 0.0, 1.0)),
            reference_accuracy=self.accuracy,
            window_size=len(w),
        )

    def _interval(self, w: np.ndarray, rng: np.random.Generator) -> tuple[float, float]:
        s, c = np.asarray(self.scores), np.asarray(self.correct)
        reps = np.empty(BOOTSTRAP)
        for b in range(BOOTSTRAP):
            i = rng.integers(0, len(s), len(s))
            t = _threshold(s[i], float(c[i].mean()))
            reps[b] = (w[rng.integers(0, len(w), len(w))] > t).mean()
        tail = (1 - LEVEL) / 2 * 100
        lo, hi = np.percentile(reps, [tail, 100 - tail])
        return float(lo), float(hi)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "scores": list(self.scores), "correct": list(self.correct)}

    @staticmethod
    def from_dict(raw: dict[str, Any]) -> AccuracyModel:
        return AccuracyModel(
            float(raw["threshold"]),
            float(raw["accuracy"]),
            float(raw["confidence"]),
            tuple(float(v) for v in raw["scores"]),
            tuple(bool(v) for v in raw["correct"]),
        )

    def save(self, ref_dir: Path) -> None:
        atomic_write_text(ref_dir / ACCURACY_FILE, json.dumps(self.to_dict()) + "\n")

    @staticmethod
    def load(ref_dir: Path) -> AccuracyModel | None:
        """The version's fit, or None for a reference built without labels (or before ATC)."""
        path = ref_dir / ACCURACY_FILE
        return AccuracyModel.from_dict(json.loads(path.read_text())) if path.is_file() else None


@dataclass(frozen=True)
class AccuracyEstimate:
    """A window's estimated accuracy (no labels): ATC with its interval, AC and DoC beside it."""

    method: str
    accuracy: float  # ATC
    low: float
    high: float
    level: float
    average_confidence: float  # AC
    doc: float  # DoC
    reference_accuracy: float  # the version's accuracy on its held-out reference images
    window_size: int

    @property
    def drop(self) -> float:
        """Estimated accuracy lost against the reference (positive: worse)."""
        return self.reference_accuracy - self.accuracy

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_dict(raw: dict[str, Any]) -> AccuracyEstimate:
        return AccuracyEstimate(**raw)


def _threshold(scores: np.ndarray, accuracy: float) -> float:
    """t with mean(scores > t) = accuracy (to one image): midway between the k-th and (k+1)-th
    largest score, k = round(accuracy * n)."""
    desc = np.sort(scores)[::-1]
    k = int(round(accuracy * len(desc)))
    if k <= 0:
        return float(desc[0])
    if k >= len(desc):
        return float(desc[-1]) - 1e-9
    return float((desc[k - 1] + desc[k]) / 2)
