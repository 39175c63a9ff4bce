"""Registry behaviour against real MLflow backends: the HTTP server and embedded sqlite."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.registry_helpers import stored_model_dir
from xferlib import registry
from xferlib.config import RegistryParams
from xferlib.models import Classifier, ModelIntegrityError, create_backbone
from xferlib.registry import CandidateMetrics, decide_promotion

pytestmark = pytest.mark.integration
CFG = RegistryParams()  # the shipped gate: min_improvement 0.01, max_forgetting 0.01, floor 0.5
CLASSES = ["cat", "dog", "bird"]  # what the conftest logged_run saves
LoggedRun = Callable[..., str]


def promote(uri: str, name: str, version: str, new: float, old: float) -> registry.AuditRow:
    champ_v = registry.champion_version(uri, name)
    champ = CandidateMetrics(champ_v, 0.5, 0.9) if champ_v else None
    decision = decide_promotion(CandidateMetrics(version, new, old), champ, CFG)
    return registry.apply_decision(uri, name, decision)


@pytest.fixture
def name() -> str:
    return f"clf-{uuid.uuid4().hex[:8]}"


def test_register_is_idempotent_and_sets_challenger(
    tracking_uri: str, name: str, tmp_path: Path, logged_run: LoggedRun
) -> None:
    run_id = logged_run(tracking_uri, tmp_path, tags={"xfer.data_version": "abc.dir@r1"})
    v1 = registry.register_candidate(tracking_uri, name, run_id, tags={"xfer.flow_run_id": "f-1"})
    again = registry.register_candidate(tracking_uri, name, run_id)
    assert again == v1 == "1"
    info = registry.get_version_info(tracking_uri, name, v1)
    assert info.run_id == run_id and info.tags["xfer.gate.status"] == "pending"
    assert registry.resolve_uri(f"models:/{name}@challenger", tracking_uri) == (name, v1)
    assert registry.champion_version(tracking_uri, name) is None
    lin = registry.lineage(f"models:/{name}/1", tracking_uri)
    assert lin["data_version"] == "abc.dir@r1" and lin["flow_run_id"] == "f-1"
    assert lin["run_id"] == run_id and lin["parent_version"] == "" and lin["drift_report"] == ""


def test_promote_reject_rollback_and_history(
    tracking_uri: str, name: str, tmp_path: Path, logged_run: LoggedRun
) -> None:
    versions = [
        registry.register_candidate(tracking_uri, name, logged_run(tracking_uri, tmp_path))
        for _ in range(3)
    ]
    v1, v2, v3 = versions
    assert promote(tracking_uri, name, v1, 0.5, 0.9).action == "promoted"
    assert promote(tracking_uri, name, v2, 0.7, 0.9).champion_before == v1
    info = registry.get_version_info(tracking_uri, name, v2)
    assert registry.champion_version(tracking_uri, name) == v2 and info.aliases == ["champion"]
    assert info.description.startswith(f"**Promoted** to champion, replacing v{v1}.")
    assert "| new labelled data | 0.7000 | 0.5000 |" in info.description  # challenger, champion
    assert registry.resolve_uri(f"models:/{name}@previous-champion", tracking_uri)[1] == v1

    rejected = promote(tracking_uri, name, v3, 0.4, 0.9)  # worse on the new data
    assert rejected.action == "rejected" and "too small" in rejected.reasons
    assert registry.champion_version(tracking_uri, name) == v2
    info = registry.get_version_info(tracking_uri, name, v3)
    tags = info.tags
    assert tags["xfer.gate.decision"] == "rejected" and tags["xfer.gate.status"] == "done"
    assert info.aliases == ["challenger"]  # the last candidate, rejected: it stays challenger
    assert info.description.startswith(f"**Rejected**: the champion v{v2} stays.")
    assert "- new data: " in info.description and "too small" in info.description

    back = registry.rollback(tracking_uri, name)
    assert (back.champion_before, back.champion_after) == (v2, v1)
    said = registry.get_version_info(tracking_uri, name, v2).description
    assert said.startswith("**Promoted**") and said.endswith(f"v{v1} is champion again.")
    assert registry.champion_version(tracking_uri, name) == v1
    with pytest.raises(LookupError, match="no previous-champion"):
        registry.rollback(tracking_uri, name)  # v1 replaced nothing: nowhere further back

    rows = registry.history(tracking_uri, name)
    assert [(r.action, r.version) for r in rows] == [
        ("promoted", v1), ("promoted", v2), ("rejected", v3), ("rolled_back", v2),
    ]  # fmt: skip
    assert [r.champion_after for r in rows] == [v1, v2, v2, v1]
    assert rows == sorted(rows, key=lambda r: r.timestamp_ns)


def test_a_version_is_gated_once(
    tracking_uri: str, name: str, tmp_path: Path, logged_run: LoggedRun
) -> None:
    v1 = registry.register_candidate(tracking_uri, name, logged_run(tracking_uri, tmp_path))
    promote(tracking_uri, name, v1, 0.5, 0.9)
    with pytest.raises(ValueError, match="already gated"):
        promote(tracking_uri, name, v1, 0.5, 0.9)
    assert len(registry.history(tracking_uri, name)) == 1


def test_a_crash_after_any_step_leaves_a_champion_and_resume_completes(
    tracking_uri: str, name: str, tmp_path: Path, logged_run: LoggedRun
) -> None:
    v1 = registry.register_candidate(tracking_uri, name, logged_run(tracking_uri, tmp_path))
    promote(tracking_uri, name, v1, 0.5, 0.9)
    # describe, record, keep previous, move champion, challenger leaves, audit, done
    champion, n_steps, crash_after = v1, 7, 0
    while crash_after < n_steps:
        v = registry.register_candidate(tracking_uri, name, logged_run(tracking_uri, tmp_path))
        steps = registry.decision_steps(tracking_uri, name, _decision(name, tracking_uri, v))
        assert len(steps) == n_steps
        for _label, step in steps[:crash_after]:
            step()
        recorded = "record decision" in [label for label, _ in steps[:crash_after]]
        now = registry.champion_version(tracking_uri, name)
        assert now in (champion, v), f"crash after {crash_after}: champion {now}"
        tags = registry.get_version_info(tracking_uri, name, v).tags
        if now == v:  # only a version whose verdict is on record can be champion
            assert tags["xfer.gate.decision"] == "promoted"
        assert tags["xfer.gate.status"] == ("applying" if recorded else "pending")
        assert registry.resume(tracking_uri, name) == ([v] if recorded else [])
        if not recorded:  # no verdict on record: the gate simply runs again
            registry.apply_decision(tracking_uri, name, _decision(name, tracking_uri, v))
        assert registry.champion_version(tracking_uri, name) == v
        info = registry.get_version_info(tracking_uri, name, v)
        assert "challenger" not in info.aliases and "**Promoted**" in info.description
        assert "0.9000" in info.description  # the first write's metrics, not a resume's NaNs
        assert (
            registry.resolve_uri(f"models:/{name}@previous-champion", tracking_uri)[1] == champion
        )
        assert registry.get_version_info(tracking_uri, name, v).tags["xfer.gate.status"] == "done"
        champion, crash_after = v, crash_after + 1
    actions = [(r.action, r.version) for r in registry.history(tracking_uri, name)]
    assert len(actions) == 1 + n_steps and len(set(actions)) == len(actions)  # one row each


def _decision(name: str, uri: str, version: str) -> registry.PromotionDecision:
    champ = registry.champion_version(uri, name)
    return decide_promotion(
        CandidateMetrics(version, 0.9, 0.9), CandidateMetrics(champ or "0", 0.5, 0.9), CFG
    )


def test_load_predictor_predicts_like_the_saved_model(
    tracking_uri: str, name: str, tmp_path: Path, logged_run: LoggedRun
) -> None:
    run_id = logged_run(tracking_uri, tmp_path, seed=3)
    v = registry.register_candidate(tracking_uri, name, run_id)
    promote(tracking_uri, name, v, 0.5, 0.9)
    pred = registry.load_predictor(f"models:/{name}@champion", tracking_uri)
    images = torch.randint(0, 256, (5, 3, 20, 20), dtype=torch.uint8)
    out = pred.predict(images)
    assert pred.version == v and out.probs.shape == (5, 3)
    assert np.allclose(out.probs.sum(axis=1), 1.0, atol=1e-5)
    assert set(out.labels) <= set(CLASSES)
    torch.manual_seed(3)
    same = Classifier(create_backbone("tiny", pretrained=False), 3).eval()
    with torch.no_grad():
        expected = torch.softmax(same(pred.preprocess(images)), 1).numpy()
    assert np.allclose(out.probs, expected, atol=1e-5)


def test_tampered_weights_are_refused(
    tracking_uri: str, name: str, tmp_path: Path, logged_run: LoggedRun, mlflow_server: object
) -> None:
    import mlflow.pyfunc

    run_id = logged_run(tracking_uri, tmp_path)
    v = registry.register_candidate(tracking_uri, name, run_id)
    artifacts = mlflow_server.artifacts  # type: ignore[attr-defined]
    stored = stored_model_dir(tracking_uri, name, v, artifacts) / "model.pt"
    stored.write_bytes(stored.read_bytes() + b"\0")  # one byte appended in the artifact store
    with pytest.raises(ModelIntegrityError, match="refusing to load"):
        registry.load_predictor(f"models:/{name}/{v}", tracking_uri)
    with pytest.MonkeyPatch.context() as mp:  # MLflow's own loader refuses it too
        mp.setenv("MLFLOW_TRACKING_URI", tracking_uri)
        with pytest.raises(ModelIntegrityError, match="refusing to load"):
            mlflow.pyfunc.load_model(f"models:/{name}/{v}")


def test_resolve_uri_rejects_malformed_uris() -> None:
    assert registry.resolve_uri("models:/a-b/12") == ("a-b", "12")
    for bad in ("runs:/abc/model", "models:/name", "models:/name/latest"):
        with pytest.raises(ValueError, match="models:/NAME"):
            registry.resolve_uri(bad)
