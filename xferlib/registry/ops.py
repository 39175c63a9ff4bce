"""Writing the registry: register a candidate, apply a gate decision, roll back, resume after a crash.

The order of operations and why it is crash-safe is documented in `xferlib/registry.py`.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable
from functools import partial
from typing import Literal

from xferlib.registry.audit import AuditRow, history, write_audit
from xferlib.registry.client import call_with_retries, fluent_target, mlflow_client
from xferlib.registry.promotion import CandidateMetrics, PromotionDecision, decision_markdown
from xferlib.registry.runs import MODEL_ID_TAG, SHA_TAG
from xferlib.registry.versions import (
    CHALLENGER,
    CHAMPION,
    DECISION,
    DECISION_ID,
    LINEAGE_TAGS,
    PREVIOUS,
    REASONS,
    REPLACED,
    ROLLBACK_TO,
    STATUS,
    VersionInfo,
    aliases,
    champion_version,
    describe_version,
    drop_alias,
    drop_alias_of,
    get_version_info,
    set_alias,
    tag_version,
    unfinished_versions,
)  # fmt: skip


def register_candidate(
    tracking_uri: str, name: str, run_id: str, tags: dict[str, str] | None = None
) -> str:
    """Register the run's logged MLflow model (`models:/m-<id>`, see `registry.pyfunc_model`) as
    a new version (alias `challenger`, gate pending).

    Idempotent: if a version of `name` already comes from `run_id` (e.g. a retry after a lost
    response) that version is returned and nothing new is created.
    """
    client = mlflow_client(tracking_uri)
    run = call_with_retries(tracking_uri, f"read run {run_id}", lambda: client.get_run(run_id))
    sha, model_id = run.data.tags.get(SHA_TAG), run.data.tags.get(MODEL_ID_TAG)
    if not sha or not model_id:
        raise ValueError(
            f"run {run_id} has no {SHA_TAG} or {MODEL_ID_TAG} tag; log the model with "
            "Tracker.log_model before registering"
        )
    all_tags = {t: run.data.tags[t] for t in LINEAGE_TAGS if t in run.data.tags}
    all_tags.update({**(tags or {}), SHA_TAG: sha, STATUS: "pending"})

    def find_or_create() -> str:
        if not client.search_registered_models(f"name = '{name}'"):
            try:
                client.create_registered_model(name)
            except Exception as exc:  # created concurrently: fine
                if "RESOURCE_ALREADY_EXISTS" not in str(getattr(exc, "error_code", "")):
                    raise
        found = client.search_model_versions(f"name = '{name}' and run_id = '{run_id}'")
        if found:
            return str(min(int(v.version) for v in found))
        # an embedded (sqlite) registry resolves `models:/m-<id>` through MLflow's *global*
        # tracking URI, not this client's: point it here for the call
        with fluent_target(tracking_uri, run.info.experiment_id):
            mv = client.create_model_version(
                name, f"models:/{model_id}", run_id, tags=all_tags, model_id=model_id
            )
        return str(mv.version)

    version = call_with_retries(tracking_uri, f"register {name}", find_or_create)
    if get_version_info(tracking_uri, name, version).tags.get(STATUS) == "pending":
        set_alias(tracking_uri, name, CHALLENGER, version)
    return version


Step = tuple[str, Callable[[], None]]


def _check_can_apply(
    tracking_uri: str, name: str, decision: PromotionDecision, info: VersionInfo
) -> str | None:
    """Refuse stale or conflicting decisions; returns the current champion version."""
    version = info.version
    if info.tags.get(STATUS) == "done":
        raise ValueError(
            f"{name} v{version} was already gated ({info.tags.get(DECISION)}); register a new candidate"
        )
    others = [v.version for v in unfinished_versions(tracking_uri, name) if v.version != version]
    if others:
        raise RuntimeError(
            f"{name} v{others[0]} has an unfinished registry operation; run registry.resume first"
        )
    current = aliases(tracking_uri, name).get(CHAMPION)
    expected = decision.champion.version if decision.champion else None
    if info.tags.get(STATUS) != "applying" and current != expected:
        raise RuntimeError(
            f"{name}@champion is v{current} but the decision compared against v{expected}; re-run the gate"
        )
    return current


def decision_steps(tracking_uri: str, name: str, decision: PromotionDecision) -> list[Step]:
    """The ordered steps `apply_decision` runs (see the module docstring); each is idempotent.

    Public so tests can stop after any prefix (a crash) and check the registry is still consistent.
    """
    version = decision.challenger.version
    info = get_version_info(tracking_uri, name, version)
    resuming = info.tags.get(STATUS) == "applying"
    current = _check_can_apply(tracking_uri, name, decision, info)
    before = (
        aliases(tracking_uri, name).get(PREVIOUS, "") if current == version else (current or "")
    )
    promote = decision.action == "promote"
    row = AuditRow(
        model=name,
        version=version,
        action="promoted" if promote else "rejected",
        champion_before=before,
        champion_after=version if promote else before,
        reasons=" | ".join(decision.reasons)[:5000],
        decision_id=info.tags.get(DECISION_ID, "") if resuming else uuid.uuid4().hex,
    )
    record = {DECISION: row.action, REASONS: row.reasons, DECISION_ID: row.decision_id}
    record.update({REPLACED: before} if promote else {})
    record[STATUS] = "applying"  # written last of the step-1 tags: it is what marks the version
    # a resumed decision is rebuilt from tags without its metrics: keep the description written
    # the first time (it is only rewritten if the crash came before it)
    markdown = decision_markdown(decision, before if promote else "", row.decision_id)
    steps: list[Step] = []
    if not (resuming and info.description):
        steps.append(
            ("describe decision", lambda: describe_version(tracking_uri, name, version, markdown))
        )
    steps.append(("record decision", lambda: tag_version(tracking_uri, name, version, record)))
    if promote:
        if before:
            steps.append(
                ("keep previous champion", lambda: set_alias(tracking_uri, name, PREVIOUS, before))
            )
        steps.append(("move champion", lambda: set_alias(tracking_uri, name, CHAMPION, version)))
        steps.append(
            ("challenger leaves", lambda: drop_alias_of(tracking_uri, name, CHALLENGER, version))
        )
    steps.append(("write audit row", partial(_write_audit, tracking_uri, row)))
    steps.append(("mark done", lambda: tag_version(tracking_uri, name, version, {STATUS: "done"})))
    return steps


def _write_audit(tracking_uri: str, row: AuditRow) -> None:
    write_audit(tracking_uri, row)


def apply_decision(tracking_uri: str, name: str, decision: PromotionDecision) -> AuditRow:
    """Apply a gate decision (promote or reject) in the crash-safe order; returns its audit row."""
    for _label, step in decision_steps(tracking_uri, name, decision):
        step()
    return [r for r in history(tracking_uri, name) if r.version == decision.challenger.version][-1]


def rollback(tracking_uri: str, name: str, reason: str = "") -> AuditRow:
    """Make `previous-champion` the champion again; its own predecessor becomes the new rollback
    target (from the audit history), so repeated rollbacks walk back in time. `reason` (why, for
    an automatic rollback) goes into the audit row and the version's description."""
    if unfinished_versions(tracking_uri, name):
        raise RuntimeError(
            f"{name} has an unfinished registry operation; run registry.resume first"
        )
    now = aliases(tracking_uri, name)
    current, target = now.get(CHAMPION), now.get(PREVIOUS)
    if not current or not target:
        raise LookupError(f"{name} has no {PREVIOUS} alias; nothing to roll back to")
    row = AuditRow(
        name,
        current,
        "rolled_back",
        current,
        target,
        f"rollback v{current} -> v{target}" + (f": {reason}" if reason else ""),
        uuid.uuid4().hex,
    )
    record = {DECISION: "rolled_back", DECISION_ID: row.decision_id, ROLLBACK_TO: target}
    said = get_version_info(tracking_uri, name, current).description
    note = f"**Rolled back** (`{row.decision_id}`): v{target} is champion again."
    note += f" {reason}" if reason else ""
    describe_version(tracking_uri, name, current, f"{said}\n\n---\n\n{note}" if said else note)
    tag_version(tracking_uri, name, current, {**record, STATUS: "applying"})
    _finish_rollback(tracking_uri, name, row)
    return [r for r in history(tracking_uri, name) if r.decision_id == row.decision_id][-1]


def _finish_rollback(tracking_uri: str, name: str, row: AuditRow) -> None:
    set_alias(tracking_uri, name, CHAMPION, row.champion_after)  # the commit point
    older = [
        r.champion_before
        for r in history(tracking_uri, name)
        if r.action == "promoted" and r.version == row.champion_after
    ]
    if older and older[-1]:
        set_alias(tracking_uri, name, PREVIOUS, older[-1])
    else:
        client = mlflow_client(tracking_uri)
        call_with_retries(tracking_uri, "drop alias", lambda: drop_alias(client, name, PREVIOUS))
    write_audit(tracking_uri, row)
    tag_version(tracking_uri, name, row.version, {STATUS: "done"})


def resume(tracking_uri: str, name: str) -> list[str]:
    """Finish operations a crash left half-done (versions tagged `applying`); returns their versions."""
    done = []
    for info in unfinished_versions(tracking_uri, name):
        decision_id = info.tags.get(DECISION_ID, "")
        if info.tags.get(DECISION) == "rolled_back":
            target = info.tags.get(ROLLBACK_TO, "")
            row = AuditRow(
                name,
                info.version,
                "rolled_back",
                info.version,
                target,
                f"rollback v{info.version} -> v{target}",
                decision_id,
            )
            _finish_rollback(tracking_uri, name, row)
        else:
            champ = champion_version(tracking_uri, name)
            me = CandidateMetrics(info.version, math.nan, math.nan)
            old = CandidateMetrics(champ, math.nan, math.nan) if champ else None
            reasons = info.tags.get(REASONS, "").split(" | ")
            action: Literal["promote", "reject"] = (
                "promote" if info.tags.get(DECISION) == "promoted" else "reject"
            )
            decision = PromotionDecision(action, reasons, me, old, 0.0, 0.0)
            for _label, step in decision_steps(tracking_uri, name, decision):
                step()
        done.append(info.version)
    return done
