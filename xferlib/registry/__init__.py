"""Model registry: candidates, the promotion gate, champion/challenger aliases, rollback, lineage.

`decide_promotion` is pure; everything else talks to MLflow's registry (server or sqlite) through
`registry.client.call_with_retries`. A version's source is its run's MLflow pyfunc model
(`registry.pyfunc_model`). Aliases: `challenger` = the last registered candidate until it is
promoted, `champion` = the version serving, `previous-champion` = the one it replaced (rollback
target).

Order of operations when a decision is applied (each step idempotent, so a crash is resumed by
running `apply_decision` / `resume` again; see `decision_steps`):
  0. the version's description: the decision in Markdown (not rewritten by a resume, which has
     no metrics; the version is still `pending`, so a crash here just means "gate again").
  1. challenger tags: decision, reasons, decision_id, replaced (the outgoing champion) and, last,
     `xfer.gate.status=applying` - the gate's
     verdict is on record before any alias moves; "applying" marks an unfinished operation.
  2. promote only: alias `previous-champion` -> the current champion (the rollback target exists
     before the champion leaves it).
  3. promote only: alias `champion` -> challenger: ONE atomic upsert, the commit point. Before it
     the old champion serves, after it the new one; there is never no champion.
  3b. promote only: alias `challenger` removed from the version (if it still points there).
  4. audit row (experiment `xfer-registry-audit`), written once per decision_id.
  5. `xfer.gate.status=done` - last, so "applying" on any version means steps 2-4 may be missing.
A version can only become champion after step 1 recorded `decision=promoted` for it.
Rollback follows the same shape: a note appended to the description, tags (rolled_back,
rollback_to, applying) -> champion (commit)
-> previous-champion := the restored version's own predecessor (from the audit) or removed ->
audit -> done. Any "applying" version blocks new decisions until `resume` finishes it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from xferlib.registry.audit import AuditRow, history
from xferlib.registry.client import TrackingUnavailable
from xferlib.registry.ops import (
    apply_decision,
    decision_steps,
    register_candidate,
    resume,
    rollback,
)
from xferlib.registry.promotion import CandidateMetrics, PromotionDecision, decide_promotion
from xferlib.registry.versions import (
    CHALLENGER,
    CHAMPION,
    PREVIOUS,
    VersionInfo,
    champion_version,
    get_version_info,
    lineage,
    resolve_uri,
)

if TYPE_CHECKING:
    from xferlib.models.predictor import Predictor

__all__ = [
    "CHALLENGER", "CHAMPION", "PREVIOUS", "AuditRow", "CandidateMetrics", "PromotionDecision",
    "TrackingUnavailable", "VersionInfo", "apply_decision", "champion_version", "decide_promotion",
    "decision_steps", "download_version_artifact", "get_version_info", "history", "lineage", "load_predictor",
    "register_candidate", "resolve_uri", "resume", "rollback",
]  # fmt: skip


def download_version_artifact(
    tracking_uri: str, name: str, version: str, artifact: str, dst: Path
) -> Path:
    """Copy an artifact folder of a version's run (e.g. its drift `reference`) into `dst`."""
    from xferlib.registry.artifacts import download_version_artifact as _download

    return _download(tracking_uri, name, version, artifact, dst)


def load_predictor(model_uri: str, tracking_uri: str) -> Predictor:
    """Download a version's MLflow model, verify the sha256 of the weights inside it and load
    them (see registry.artifacts)."""
    from xferlib.registry.artifacts import load_predictor as _load

    return _load(model_uri, tracking_uri)
