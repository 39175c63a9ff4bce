"""The promotion gate: a pure decision over two versions' metrics (no I/O, no MLflow)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

from xferlib.config import RegistryParams

_EPS = 1e-9  # metric comparisons tolerate float noise (0.8 + 0.02 != 0.82 in binary)


@dataclass(frozen=True)
class CandidateMetrics:
    """A version's primary metric on the new (drifted) data and on the original ID holdout."""

    version: str
    new_metric: float
    holdout_metric: float


@dataclass(frozen=True)
class PromotionDecision:
    action: Literal["promote", "reject"]
    reasons: list[str]
    challenger: CandidateMetrics
    champion: CandidateMetrics | None
    min_improvement: float
    max_forgetting: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def decide_promotion(
    challenger: CandidateMetrics, champion: CandidateMetrics | None, cfg: RegistryParams
) -> PromotionDecision:
    """The gate: promote when there is no champion; otherwise the challenger must gain at least
    `min_improvement` on the new data AND lose at most `max_forgetting` on the old holdout."""

    def made(action: Literal["promote", "reject"], reasons: list[str]) -> PromotionDecision:
        return PromotionDecision(
            action, reasons, challenger, champion, cfg.min_improvement, cfg.max_forgetting
        )

    values = (challenger.new_metric, challenger.holdout_metric)
    if not all(math.isfinite(v) for v in values):
        return made("reject", [f"challenger v{challenger.version} has non-finite metrics {values}"])
    if champion is None:
        return made("promote", [f"no champion yet: v{challenger.version} becomes the first"])
    gain = challenger.new_metric - champion.new_metric
    forgot = champion.holdout_metric - challenger.holdout_metric
    c, k = f"v{challenger.version}", f"v{champion.version}"
    better = gain + _EPS >= cfg.min_improvement
    kept = forgot <= cfg.max_forgetting + _EPS
    reasons = [
        f"new data: {c} {challenger.new_metric:.4f} vs {k} {champion.new_metric:.4f} "
        f"(gain {gain:+.4f}, needs >= {cfg.min_improvement:+.4f}): {'ok' if better else 'too small'}",
        f"old holdout: {c} {challenger.holdout_metric:.4f} vs {k} {champion.holdout_metric:.4f} "
        f"(forgetting {forgot:+.4f}, allowed <= {cfg.max_forgetting:.4f}): {'ok' if kept else 'too much'}",
    ]
    return made("promote" if better and kept else "reject", reasons)
