"""The retrain lifecycle, written once: verdict -> decision -> retrain -> gate -> alerts.

Every entry point runs these functions: `xfer monitor`, `xfer retrain` and `xfer demo --no-prefect`
with `Direct` (plain stage calls), the Prefect flows with their own `Orchestrator` (tasks, and the
retrain deployment that a drift event starts; see flows/pipeline.py). What differs between them is
only *how* a step runs; the order, the in-flight marker and the alerts live here.

    monitor_window: [score] -> check drift -> decide -> (feedback?) request_retrain
    run_retrain:    claim the marker -> retrain_started -> retrain + gate
                    -> retrain_finished (the gate's verdict) | retrain_failed (crash; marker released)

A manual request (`xfer retrain`) is refused while another retrain is in flight (unless forced)
and skips the drift cool-down, which it then restarts. The stages' typed results
(`xferlib.stages.results`) become the outcomes below, which every entry point reports.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol

from xferlib.release.gate import GateResult
from xferlib.stages import trigger
from xferlib.stages.results import Decision, DriftResult, RetrainResult, ScoreResult
from xferlib.workdir import Workdir

PathLike = str | os.PathLike[str]
RetrainStatus = Literal["finished", "failed", "requested", "labels_needed"]


@dataclass(frozen=True)
class RetrainRequest:
    """What one retrain works on. `request_id` holds the in-flight marker and names the alerts:
    the drift report's id for a drift-triggered retrain, `manual-...` for an operator's request."""

    workdir: str
    feedback: str
    request_id: str
    drift_report: str = ""  # lineage: the report that asked for it ("" for a manual request)
    window_id: str = ""  # names the feedback dataset (feedback-<window_id>)
    manual: bool = False
    force: bool = False

    @staticmethod
    def manual_request(
        workdir: PathLike, feedback: PathLike, drift_report: str | None = None, force: bool = False
    ) -> RetrainRequest:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        rid = f"manual-{stamp}-{uuid.uuid4().hex[:4]}"
        return RetrainRequest(
            str(workdir), str(feedback), rid, drift_report or "", rid, manual=True, force=force
        )


@dataclass(frozen=True)
class RetrainOutcome:
    status: RetrainStatus
    request_id: str
    version: str = ""
    action: str = ""  # the gate's decision: promote | reject
    reasons: tuple[str, ...] = ()
    error: str = ""  # one line, when status == "failed"
    flow_run_id: str = ""
    incident: str = ""  # the incident the drift opened or joined (labels_needed)
    result: RetrainResult | None = field(default=None, compare=False, repr=False)

    @staticmethod
    def of(request_id: str, result: RetrainResult, flow_run_id: str = "") -> RetrainOutcome:
        """A finished retrain stage's result, as the lifecycle reports it."""
        outcome = RetrainOutcome.from_gate(request_id, result.gate, flow_run_id)
        return replace(outcome, result=result)

    @staticmethod
    def from_gate(request_id: str, gate: GateResult, flow_run_id: str = "") -> RetrainOutcome:
        """A finished retrain known by its gate record (a retrain that ran in another process)."""
        return RetrainOutcome(
            "finished",
            request_id,
            version=str(gate.version),
            action=gate.decision.action,
            reasons=tuple(gate.decision.reasons),
            flow_run_id=flow_run_id,
        )

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        result = self.result.to_dict() if self.result is not None else None
        return {**out, "reasons": list(self.reasons), "result": result}


@dataclass(frozen=True)
class MonitorOutcome:
    window_id: str
    report_id: str
    status: str  # the verdict: drift | no_drift | insufficient_data
    drift: bool
    retrain: bool  # the decision
    reason: str
    report_html: str = ""
    retrained: RetrainOutcome | None = None

    @staticmethod
    def of(
        result: DriftResult, decision: Decision, retrained: RetrainOutcome | None = None
    ) -> MonitorOutcome:
        """The drift stage's verdict and the trigger's decision."""
        report = result.report
        return MonitorOutcome(
            window_id=result.window_id or "",
            report_id=report.report_id,
            status=report.status,
            drift=report.drift,
            retrain=decision.retrain,
            reason=decision.reason,
            report_html=report.report_html or "",
            retrained=retrained,
        )

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        return {**out, "retrained": self.retrained.to_dict() if self.retrained else None}

    @staticmethod
    def from_dict(d: Mapping[str, Any]) -> MonitorOutcome:
        """The inverse of to_dict (a Prefect flow run returns the dict)."""
        r = d.get("retrained")
        retrained = None
        if r:
            retrained = RetrainOutcome(
                **{**{k: r[k] for k in r if k != "reasons"}, "reasons": tuple(r["reasons"])}
            )
        return MonitorOutcome(
            **{**{k: d[k] for k in d if k != "retrained"}, "retrained": retrained}
        )


class Orchestrator(Protocol):
    """How each step runs. `Direct` calls the stages; flows/ runs them as Prefect tasks."""

    workdir: str

    def score(self, src: str, window_id: str) -> ScoreResult: ...
    def check(self, window_id: str | None) -> DriftResult: ...
    def decide(self, report: DriftResult) -> Decision: ...
    def retrain(self, request: RetrainRequest, flow_run_id: str) -> RetrainResult: ...
    def request_retrain(self, request: RetrainRequest) -> RetrainOutcome: ...


class Direct:
    """Plain stage calls in this process: `xfer monitor`, `xfer retrain`, the demo without Prefect."""

    def __init__(self, workdir: PathLike | None, params_path: str | None = None) -> None:
        self.workdir, self.params_path = str(Workdir.resolve(workdir).root), params_path

    def score(self, src: str, window_id: str) -> ScoreResult:
        from xferlib.stages import monitor

        return monitor.score(self.workdir, src, window_id=window_id, params_path=self.params_path)

    def check(self, window_id: str | None) -> DriftResult:
        from xferlib.stages import monitor

        return monitor.drift(self.workdir, window_id=window_id, params_path=self.params_path)

    def decide(self, report: DriftResult) -> Decision:
        return trigger.decide(self.workdir, report)

    def retrain(self, request: RetrainRequest, flow_run_id: str) -> RetrainResult:
        from xferlib.stages import retrain

        return retrain.retrain(
            self.workdir,
            Path(request.feedback),
            self.params_path,
            drift_report=request.drift_report or None,
            flow_run_id=flow_run_id or None,
            feedback_id=request.window_id or request.request_id,
        )

    def request_retrain(self, request: RetrainRequest) -> RetrainOutcome:
        return run_retrain(self, request)  # here and now, in this process


def monitor_window(
    orch: Orchestrator,
    window_id: str | None,
    *,
    src: str | None = None,
    feedback: PathLike | None = None,
) -> MonitorOutcome:
    """Score `src` as window `window_id` (unless already scored), check it, decide, and retrain
    when the decision says so and labelled feedback is there; without it the retrain request is
    withdrawn (marker released, streak and cool-down restored) and reported as labels_needed."""
    if src is not None:
        window_id = window_id or datetime.now(UTC).strftime("w%Y%m%dT%H%M%S")
        orch.score(src, window_id)
    report = orch.check(window_id)
    decision = orch.decide(report)
    seen = MonitorOutcome.of(report, decision)
    if not seen.retrain:
        return seen
    if feedback is None:
        trigger.release(orch.workdir, seen.report_id, undo=True)
        incident = _incident_needs_labels(orch.workdir, report)
        waiting = RetrainOutcome("labels_needed", seen.report_id, incident=incident)
        return MonitorOutcome.of(report, decision, waiting)
    request = RetrainRequest(
        orch.workdir,
        str(feedback),
        seen.report_id,
        seen.report_id,
        seen.window_id or window_id or "",
    )
    _incident_joins(orch.workdir, report)
    return MonitorOutcome.of(report, decision, orch.request_retrain(request))


def _incident_needs_labels(workdir: str, report: DriftResult) -> str:
    """Open the model's incident (or join the active one) and, while it has none, write its label
    request: the drift's whole response when no labels are at hand, so errors propagate."""
    from xferlib.stages import incidents, labels

    inc, _ = incidents.open_incident(workdir, report)
    if inc.state == "open":  # a new incident, or one whose request failed before
        labels.request_labels(workdir, inc.id)
    return inc.id


def _incident_joins(workdir: str, report: DriftResult) -> None:
    """Labels came with the request: the drift still opens (or joins) the model's incident, which
    run_retrain then moves to retraining. Best effort: the record must not stop the retrain."""
    from xferlib.stages import incidents

    try:
        incidents.open_incident(workdir, report)
    except Exception as exc:  # noqa: BLE001 - bookkeeping of the retrain, not the retrain
        _warn("incident not recorded", exc)


def _incident_starts(workdir: str, request: RetrainRequest) -> None:
    """The incident of the request's drift report (if any) is retraining now; best effort."""
    from xferlib.stages import incidents

    try:
        incidents.retrain_started(workdir, request.drift_report, request.request_id)
    except Exception as exc:  # noqa: BLE001 - the retrain goes on either way
        _warn("incident not updated", exc)


def _incident_outcome(workdir: str, request: RetrainRequest, outcome: RetrainOutcome) -> None:
    """The retrain's verdict on the incident its drift report opened (if any); best effort."""
    from xferlib.stages import incidents

    try:
        incidents.retrain_outcome(
            workdir, request.drift_report, outcome.status, outcome.version, outcome.action
        )
    except Exception as exc:  # noqa: BLE001 - the retrain's verdict stands either way
        _warn("incident not updated", exc)


def _warn(what: str, exc: BaseException) -> None:
    import sys

    print(f"xfer: warning: {what} ({_one_line(exc)})", file=sys.stderr)


def run_retrain(
    orch: Orchestrator, request: RetrainRequest, flow_run_id: str = ""
) -> RetrainOutcome:
    """One retrain, start to verdict. Raises (nothing started, no alert) on a manual request that
    is wrong on its face, or when another retrain holds the marker (RetrainInFlight); any exception
    after that is a failed retrain: alerted as retrain_failed, marker released, returned "failed"."""
    wd, rid = request.workdir, request.request_id
    if request.manual:
        _preflight(request)  # a drift-triggered one meets the same checks inside the stage
    trigger.claim(wd, rid, force=request.force, manual=request.manual)
    attempt = uuid.uuid4().hex[:8]  # alert keys of this attempt (a retried report alerts again)
    trigger.retrain_started(wd, rid, flow_run_id, attempt)
    _incident_starts(wd, request)
    try:
        outcome = RetrainOutcome.of(rid, orch.retrain(request, flow_run_id), flow_run_id)
    except Exception as exc:  # any crash: never reported as finished, never left in flight
        error = _one_line(exc)
        trigger.retrain_failed(wd, rid, flow_run_id, error, attempt)
        failed = RetrainOutcome("failed", rid, error=error, flow_run_id=flow_run_id)
        _incident_outcome(wd, request, failed)
        return failed
    trigger.retrain_finished(
        wd, rid, flow_run_id, version=outcome.version, action=outcome.action, attempt=attempt
    )
    _incident_outcome(wd, request, outcome)
    return outcome


def _preflight(request: RetrainRequest) -> None:
    """Refuse an operator's request that is wrong on its face before it claims the marker or
    alerts: a missing feedback folder, or class folders that are not classes of the champion."""
    from xferlib.context import Context
    from xferlib.stages.retrain import check_feedback_classes  # the stage's own check

    if not Path(request.feedback).exists():
        raise FileNotFoundError(f"feedback {request.feedback} does not exist")
    check_feedback_classes(Context.load(request.workdir), Path(request.feedback))


def _one_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else repr(exc)}"


class RetrainFailed(RuntimeError):
    """Raised by entry points that must exit non-zero (the CLI, a Prefect flow run) on a failed outcome."""

    def __init__(self, outcome: RetrainOutcome) -> None:
        super().__init__(f"retrain {outcome.request_id} failed: {outcome.error}")
        self.outcome = outcome


def retrain_now(
    workdir: PathLike | None,
    feedback: PathLike,
    *,
    drift_report: str | None = None,
    force: bool = False,
    params_path: str | None = None,
) -> RetrainOutcome:
    """`xfer retrain`: an operator's request through the same lifecycle; raises on failure."""
    orch = Direct(workdir, params_path)
    request = RetrainRequest.manual_request(orch.workdir, feedback, drift_report, force)
    outcome = run_retrain(orch, request)
    if outcome.status == "failed":
        raise RetrainFailed(outcome)
    return outcome


def labels_arrived(orch: Orchestrator, incident_id: str) -> RetrainOutcome | None:
    """Retrain an incident on its accepted labels once they reach `retrain.min_labels`.

    The incident's move labels_arriving -> retraining is a compare-and-swap, so however many
    imports (or workers) call this, one retrain is requested per crossing; later labels (after a
    rejected retrain) may request another once the drift cool-down has passed. None when not
    ready, or when another retrain holds the marker (the incident waits for the next import)."""
    from xferlib.stages import incidents

    claimed = incidents.claim_retrain(orch.workdir, incident_id)
    if claimed is None:
        return None
    # the drift decision that opened the incident asked for labels, not a retrain, and recorded
    # none: this retrain starts the cool-down (else the next drifted window retrains at once)
    trigger.start_cooldown(orch.workdir)
    request = RetrainRequest(
        orch.workdir, claimed.feedback, claimed.drift_report, claimed.drift_report, claimed.name
    )
    try:
        return orch.request_retrain(request)
    except trigger.RetrainInFlight as exc:
        incidents.retrain_outcome(orch.workdir, claimed.drift_report, "not_started", "", "")
        _warn(f"incident {incident_id} retrain not started", exc)
        return None
