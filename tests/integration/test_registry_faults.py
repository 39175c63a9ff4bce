"""A tracking server killed mid-operation: bounded failure naming the URI, no half-moved alias.

Uses a private server (`killable_server`), never the session's shared one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from xferlib import registry
from xferlib.config import RegistryParams
from xferlib.registry import CandidateMetrics, TrackingUnavailable, decide_promotion
from xferlib.registry.runs import Tracker

pytestmark = pytest.mark.integration
BOUND_S = 20.0  # 4 attempts with 0.5 + 1 + 2 s of backoff, plus slack for a loaded machine


def test_server_killed_mid_promotion_and_mid_run_fails_fast_and_resumes_cleanly(
    killable_server: Any, tmp_path: Path, logged_run: Callable[..., str]
) -> None:
    uri, name = killable_server.uri, "clf-killed"
    v1 = registry.register_candidate(uri, name, logged_run(uri, tmp_path))
    registry.apply_decision(
        uri, name, decide_promotion(CandidateMetrics(v1, 0.5, 0.9), None, RegistryParams())
    )
    v2 = registry.register_candidate(uri, name, logged_run(uri, tmp_path))
    decision = decide_promotion(
        CandidateMetrics(v2, 0.8, 0.9), CandidateMetrics(v1, 0.5, 0.9), RegistryParams()
    )
    steps = registry.decision_steps(uri, name, decision)
    tracker = Tracker.start(uri, "xfer-test", "doomed", artifact_root=tmp_path, flush_every=1000)
    for step in range(10):
        tracker.log_metrics(step, {"loss": 1.0})  # buffered: no request yet
    recorded = [label for label, _ in steps].index("record decision") + 1
    for _label, step in steps[:recorded]:
        step()  # the verdict is recorded ...
    killable_server.kill()  # ... then the server dies before any alias moves (and mid-run)

    started = time.monotonic()
    with pytest.raises(TrackingUnavailable) as err:
        for _label, step in steps[recorded:]:
            step()
    assert time.monotonic() - started < BOUND_S
    message = str(err.value)
    assert uri in message and "MLFLOW_TRACKING_URI" in message and "\n" not in message
    started = time.monotonic()
    with pytest.raises(TrackingUnavailable, match=uri.replace(".", r"\.")):
        tracker.close()  # flushing the buffered metrics fails, bounded
    assert time.monotonic() - started < 2 * BOUND_S  # flush, then end-run: each bounded

    killable_server.start()
    assert registry.champion_version(uri, name) == v1  # nothing half-moved: the old champion serves
    assert registry.get_version_info(uri, name, v2).tags["xfer.gate.status"] == "applying"
    assert registry.resume(uri, name) == [v2]
    assert registry.champion_version(uri, name) == v2
    assert registry.resolve_uri(f"models:/{name}@previous-champion", uri)[1] == v1
    assert [r.action for r in registry.history(uri, name)] == ["promoted", "promoted"]
