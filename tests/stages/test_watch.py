"""The watch after a promotion (xferlib/release/watch.py) on a real tiny champion and registry.

The gate is not what is tested here, and a gate cannot be made to promote a worse model without
loosening it: so v2 is registered through the real registration path (run, model, reference with
its label-free accuracy fit) and promoted with `registry.apply_decision` as a gate that got it
wrong would. What is tested is what follows: the
previous champion scores in shadow, the estimates are compared, and the aliases roll back (or not).
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.flows.conftest import TINY, make_workdir, write_window
from xferlib.alerts import read_alerts
from xferlib.context import Context
from xferlib.registry import CandidateMetrics, PromotionDecision, apply_decision, history
from xferlib.registry.versions import aliases
from xferlib.release.watch import SHADOW_CONFIDENCE, WATCHED
from xferlib.stages import monitor


def _register(ctx: Context, model, name: str) -> str:
    """v-next through the real registration path (run, evaluation, logged model, registered
    challenger, reference with its accuracy fit), left for a decision; returns its version."""
    from xferlib.data.imageset import ImageSet
    from xferlib.data.splits import class_names
    from xferlib.models.io import save_model
    from xferlib.registry import register_candidate
    from xferlib.release.gate import GateInputs, _log_evaluation, _store_reference
    from xferlib.release.run import load_split, open_run

    classes = class_names(ctx.wd.prepared)
    out = ctx.wd.root / "models" / name
    save_model(model, out, classes, {"strategy": "test"})
    holdout, val = load_split(ctx, "test"), load_split(ctx, "val")
    inputs = GateInputs(None, holdout, ImageSet.concat([val, holdout]))
    with open_run(ctx, name, tags={}) as run:
        _log_evaluation(run, model, classes, inputs, out)
        version = str(
            register_candidate(ctx.wd.mlflow_uri, ctx.params.registry.model_name, run.run_id)
        )
        _store_reference(ctx, run, model, inputs.reference_images, version)
    return version


def _promote(ctx: Context, version: str, over: str) -> None:
    """Promote `version` over `over` as a gate decision would (see the module docstring)."""
    decision = PromotionDecision(
        "promote", ["test: promoted by hand"], CandidateMetrics(version, None, 0.0),
        CandidateMetrics(over, None, 0.0), 0.0, 0.0,
    )  # fmt: skip
    apply_decision(ctx.wd.mlflow_uri, ctx.params.registry.model_name, decision)


def _window(root: Path, x: np.ndarray, wid: str, tmp: Path):
    monitor.score(root, str(write_window(tmp / wid, x)), window_id=wid)
    return monitor.drift(root, window_id=wid)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, fashion, mlflow_store) -> Path:  # noqa: ARG001 - fixture order
    # the watch reads the verdict and the estimate, not Evidently's HTML: skip rendering it
    drift = {**TINY["drift"], "evidently": False}
    return make_workdir(tmp_path_factory.mktemp("watch") / "wd", fashion, {"drift": drift})


def _champion_model(ctx: Context):
    from xferlib.release.run import load_champion_model

    return load_champion_model(ctx)[0]


def test_no_watch_for_a_first_version(workdir: Path, fashion, tmp_path: Path) -> None:
    x, _ = fashion
    result = _window(workdir, x[2000:2080], "first", tmp_path)
    assert result.watch is None and "watch" not in result.to_dict()


def test_an_equal_champion_is_watched_for_watch_windows_and_kept(
    workdir: Path, fashion, tmp_path: Path
) -> None:
    ctx = Context.load(workdir)
    name, uri = ctx.params.registry.model_name, ctx.wd.mlflow_uri
    before = aliases(uri, name)["champion"]
    same = _register(ctx, copy.deepcopy(_champion_model(ctx)), "same")
    _promote(ctx, same, before)
    x, _ = fashion
    n = ctx.params.registry.watch_windows
    assert n == 3  # the shipped default
    for i in range(n):
        result = _window(workdir, x[2100 + 80 * i : 2180 + 80 * i], f"same-{i}", tmp_path)
        assert result.watch is not None and not result.watch.rolled_back
        assert (result.watch.champion, result.watch.shadow) == (same, before)
        assert result.watch.watched == i + 1
        # the same weights on the same images: the two estimates can only differ by the fits
        assert abs(result.watch.champion_estimate - result.watch.shadow_estimate) < 0.03
    after = _window(workdir, x[2500:2580], "same-after", tmp_path)
    assert after.watch is None  # the watch is over: no shadow scoring
    from xferlib import monitoring

    rows = monitoring.read_window(ctx.wd.monitoring, "same-after")
    assert SHADOW_CONFIDENCE not in rows or rows[SHADOW_CONFIDENCE].isna().all()
    assert aliases(uri, name)["champion"] == same


def test_a_worse_champion_rolls_back_with_an_alert_and_an_audit_row(
    workdir: Path, fashion, tmp_path: Path
) -> None:
    ctx = Context.load(workdir)
    name, uri = ctx.params.registry.model_name, ctx.wd.mlflow_uri
    good = aliases(uri, name)["champion"]
    broken = copy.deepcopy(_champion_model(ctx))
    with torch.no_grad():  # every class's logit row moved to the next class: confidently wrong
        broken.head.weight.copy_(broken.head.weight.roll(1, dims=0))
        broken.head.bias.copy_(broken.head.bias.roll(1, dims=0))
    bad = _register(ctx, broken, "broken")
    _promote(ctx, bad, good)
    assert aliases(uri, name)["champion"] == bad

    x, _ = fashion
    result = _window(workdir, x[2600:2680], "after-bad", tmp_path)
    w = result.watch
    assert w is not None and w.rolled_back and (w.champion, w.shadow) == (bad, good)
    assert w.champion_estimate < w.shadow_estimate - w.margin
    now = aliases(uri, name)
    assert now["champion"] == good and now.get("previous-champion") != bad
    row = history(uri, name)[-1]
    assert (row.action, row.version, row.champion_after) == ("rolled_back", bad, good)
    assert "automatic" in row.reasons and "previous champion" in row.reasons
    alert = read_alerts(ctx.wd.alerts)[-1]
    assert alert["kind"] == "rolled_back" and f"v{bad}" in alert["message"]
    from xferlib.registry.versions import get_version_info

    assert get_version_info(uri, name, bad).tags[WATCHED] == "1"
