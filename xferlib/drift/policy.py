"""`should_retrain`: pure policy from a drift report to a retrain decision.

Retrain when `cfg.consecutive_windows` drifted windows arrive in a row and the last retrain is
older than `cfg.cooldown_minutes`. An insufficient window neither counts nor breaks the streak; a
clean one resets it. The same report id seen twice (a re-run monitor, a retried task) is counted
once, so one drifted window cannot satisfy a streak of two.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from xferlib.config import DriftParams
from xferlib.drift.check import DriftReport


@dataclass(frozen=True)
class DriftState:
    """What the monitor remembers between windows (`<workdir>/state/drift.json`)."""

    streak: int = 0  # drifted windows in a row since the last clean window or retrain
    last_retrain: datetime | None = None
    last_report_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        when = self.last_retrain.isoformat() if self.last_retrain else None
        return {"streak": self.streak, "last_retrain": when, "last_report_id": self.last_report_id}

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> DriftState:
        d = d or {}
        when = d.get("last_retrain")
        return cls(
            int(d.get("streak", 0)),
            datetime.fromisoformat(when) if when else None,
            d.get("last_report_id"),
        )


@dataclass(frozen=True)
class RetrainDecision:
    retrain: bool
    reason: str
    state: DriftState  # persist this; it already records `now` as last_retrain when retrain is True

    def to_dict(self) -> dict[str, Any]:
        return {"retrain": self.retrain, "reason": self.reason, "state": self.state.to_dict()}


def should_retrain(
    report: DriftReport, state: DriftState, cfg: DriftParams, now: datetime
) -> RetrainDecision:
    """Decide whether this report triggers a retrain; returns the next state either way."""
    if report.report_id and report.report_id == state.last_report_id:
        return RetrainDecision(
            False, f"report {report.report_id} was already counted; coalesced", state
        )
    seen = replace(state, last_report_id=report.report_id or state.last_report_id)
    if report.status == "insufficient_data" or report.window_size < cfg.min_window:
        return RetrainDecision(
            False, f"window of {report.window_size} rows < min_window {cfg.min_window}", seen
        )
    if not report.drift:
        return RetrainDecision(False, "no drift; streak reset", replace(seen, streak=0))
    streak = seen.streak + 1
    if streak < cfg.consecutive_windows:
        why = f"drift in {streak} of {cfg.consecutive_windows} consecutive windows needed"
        return RetrainDecision(False, why, replace(seen, streak=streak))
    if state.last_retrain is not None:
        ready = state.last_retrain + timedelta(minutes=cfg.cooldown_minutes)
        if now < ready:
            why = f"drift confirmed but in cool-down until {ready.isoformat()}"
            return RetrainDecision(False, why, replace(seen, streak=streak))
    why = f"drift in {streak} consecutive window(s) (tests: {', '.join(report.drifted_columns)})"
    return RetrainDecision(True, why, replace(seen, streak=0, last_retrain=now))
