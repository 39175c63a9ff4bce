"""The promotion gate: a pure decision over two versions' metrics (no I/O, no MLflow).

Rules, in order: non-finite metrics reject; a holdout metric below `min_accuracy` rejects (the
only guard a first version has); no champion promotes; otherwise the challenger must gain more
than 0 and at least `min_improvement` on the new data, and forget at most `max_forgetting` on the
holdout. A version with no separate new data (a first train, a retrain without feedback) is
judged on the holdout alone, once: comparing the same images twice would only pretend to check
more.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

from xferlib.config import RegistryParams

_EPS = 1e-9  # metric comparisons tolerate float noise (0.8 + 0.02 != 0.82 in binary)
Action = Literal["promote", "reject"]


@dataclass(frozen=True)
class CandidateMetrics:
    """A version's primary metric on the new (drifted) data and on the original ID holdout.

    `new_metric` is None when the version has no new data separate from the holdout.
    """

    version: str
    new_metric: float | None
    holdout_metric: float


@dataclass(frozen=True)
class PromotionDecision:
    action: Action
    reasons: list[str]
    challenger: CandidateMetrics
    champion: CandidateMetrics | None
    min_improvement: float
    max_forgetting: float
    min_accuracy: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_dict(raw: dict[str, Any]) -> PromotionDecision:
        """Parse `to_dict()`'s output (a saved gate.json)."""
        champ = raw.get("champion")
        return PromotionDecision(
            action=raw["action"],
            reasons=list(raw["reasons"]),
            challenger=CandidateMetrics(**raw["challenger"]),
            champion=CandidateMetrics(**champ) if champ else None,
            min_improvement=raw["min_improvement"],
            max_forgetting=raw["max_forgetting"],
            min_accuracy=raw.get("min_accuracy", 0.0),
        )


def decide_promotion(
    challenger: CandidateMetrics, champion: CandidateMetrics | None, cfg: RegistryParams
) -> PromotionDecision:
    """The gate (see the module doc); every decision lists the numbers it was made on."""

    def made(action: Action, reasons: list[str]) -> PromotionDecision:
        return PromotionDecision(
            action, reasons, challenger, champion, cfg.min_improvement, cfg.max_forgetting,
            cfg.min_accuracy,
        )  # fmt: skip

    values = (challenger.new_metric, challenger.holdout_metric)
    if not all(v is None or math.isfinite(v) for v in values):
        return made("reject", [f"challenger v{challenger.version} has non-finite metrics {values}"])
    no_new = [] if challenger.new_metric is not None else [_NO_NEW_DATA]
    floor_ok = challenger.holdout_metric + _EPS >= cfg.min_accuracy
    floor = (
        f"holdout: v{challenger.version} {challenger.holdout_metric:.4f} "
        f"(floor min_accuracy {cfg.min_accuracy:.4f}): {'ok' if floor_ok else 'below the floor'}"
    )
    if not floor_ok:
        return made("reject", [*no_new, floor])
    if champion is None:
        first = f"no champion yet: v{challenger.version} becomes the first"
        return made("promote", [first, *no_new, floor])
    if challenger.new_metric is None or champion.new_metric is None:
        better, reason = _improves("holdout", challenger, champion, cfg, new=False)
        return made("promote" if better else "reject", [*no_new, reason])
    better, gained = _improves("new data", challenger, champion, cfg, new=True)
    kept, forgot = _keeps_holdout(challenger, champion, cfg)
    return made("promote" if better and kept else "reject", [gained, forgot])


_NO_NEW_DATA = "no separate new data: judged on the holdout only"


def _improves(
    what: str, c: CandidateMetrics, k: CandidateMetrics, cfg: RegistryParams, *, new: bool
) -> tuple[bool, str]:
    """Gain > 0 and >= min_improvement: a tie never promotes, whatever min_improvement is."""
    mine = c.new_metric if new else c.holdout_metric
    theirs = k.new_metric if new else k.holdout_metric
    assert mine is not None and theirs is not None
    gain = mine - theirs
    ok = gain > _EPS and gain + _EPS >= cfg.min_improvement
    need = max(cfg.min_improvement, 0.0)
    verdict = "ok" if ok else ("a tie" if abs(gain) <= _EPS else "too small")
    return ok, (
        f"{what}: v{c.version} {mine:.4f} vs v{k.version} {theirs:.4f} "
        f"(gain {gain:+.4f}, needs > 0 and >= {need:+.4f}): {verdict}"
    )


def _keeps_holdout(
    c: CandidateMetrics, k: CandidateMetrics, cfg: RegistryParams
) -> tuple[bool, str]:
    forgot = k.holdout_metric - c.holdout_metric
    ok = forgot <= cfg.max_forgetting + _EPS
    return ok, (
        f"old holdout: v{c.version} {c.holdout_metric:.4f} vs v{k.version} {k.holdout_metric:.4f} "
        f"(forgetting {forgot:+.4f}, allowed <= {cfg.max_forgetting:.4f}): "
        f"{'ok' if ok else 'too much'}"
    )


def decision_markdown(decision: PromotionDecision, replaced: str, decision_id: str) -> str:
    """The gate's decision as the version's Markdown description (what the MLflow UI shows)."""
    c, k = decision.challenger, decision.champion
    if decision.action == "promote":
        head = "**Promoted** to champion" + (f", replacing v{replaced}." if replaced else ".")
    else:
        head = "**Rejected**: the champion " + (f"v{k.version} " if k else "") + "stays."
    lines = [f"{head} Decision of the xfer promotion gate (`{decision_id}`).", ""]
    theirs = f"champion v{k.version}" if k else "champion (none)"
    lines += [f"| primary metric | challenger v{c.version} | {theirs} |", "|---|---|---|"]
    rows = (
        ("new labelled data", c.new_metric, k.new_metric if k else None),
        ("ID holdout", c.holdout_metric, k.holdout_metric if k else None),
    )
    lines += [f"| {label} | {_fmt(mine)} | {_fmt(other)} |" for label, mine, other in rows]
    lines += ["", "Reasons:", *[f"- {r}" for r in decision.reasons], ""]
    lines.append(
        f"Rules: gain > 0 and >= {decision.min_improvement:.4f} on the new data; forgetting <= "
        f"{decision.max_forgetting:.4f} on the holdout; holdout >= {decision.min_accuracy:.4f}."
    )
    return "\n".join(lines)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"
