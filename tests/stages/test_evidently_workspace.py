"""Every checked window becomes a snapshot of the model's project in the work dir's Evidently
workspace, holding Evidently's per-column view and xfer's verdict as metrics a dashboard charts;
a workspace that cannot be written costs one warning line, never the check."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.flows.conftest import write_window
from xferlib.context import Context
from xferlib.drift.workspace import VERDICT_TAB, project_id
from xferlib.stages import monitor


def _mean_values(snapshot: Any) -> dict[str, float]:
    """column -> value of the snapshot's MeanValue metrics (how a dashboard panel reads them)."""
    out = {}
    for result in snapshot.metric_results.values():
        params = result.metric_value_location.metric.params
        if params["type"].endswith(":MeanValue"):
            out[params["column"]] = float(result.value)
    return out


def _metric_types(snapshot: Any) -> set[str]:
    return {
        r.metric_value_location.metric.params["type"].rsplit(":", 1)[-1]
        for r in snapshot.metric_results.values()
    }


def test_two_checked_windows_are_two_snapshots_with_the_verdict_in_the_models_project(
    champion: Path, fashion: tuple[np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    from evidently.ui.workspace import Workspace

    x, _ = fashion
    ctx = Context.load(champion)
    name = ctx.params.registry.model_name
    ws = Workspace(str(ctx.wd.evidently_workspace))
    before = set(ws.list_runs(project_id(name))) if ws.get_project(project_id(name)) else set()
    results = {}
    for shift in (None, "invert"):
        folder = write_window(tmp_path / str(shift), x[1200:1300], shift)
        monitor.score(champion, str(folder), window_id=f"ws-{shift}")
        results[shift] = monitor.drift(champion, window_id=f"ws-{shift}")

    project = ws.get_project(project_id(name))
    assert project is not None and project.name == name
    assert [p.name for p in ws.list_projects()] == [name]
    new = set(ws.list_runs(project.id)) - before
    snaps = [ws.get_run(project.id, sid) for sid in new]
    assert len(snaps) == 2
    by_report = {s.metadata["report_id"]: s for s in snaps if s is not None}
    for shift, result in results.items():
        report = result.report
        snap = by_report[report.report_id]
        assert snap.metadata["window_id"] == f"ws-{shift}"
        assert snap.metadata["mlflow_run_id"] == result.mlflow_run_id
        assert report.status in snap.tags
        values = _mean_values(snap)
        assert values["drift"] == float(report.drift)
        assert values["window_size"] == 100.0
        for test, t in report.tests.items():
            assert values[f"{test}_p_value"] == pytest.approx(t.p_value)
            assert values[f"{test}_threshold"] == pytest.approx(t.threshold)
        assert report.accuracy is not None
        assert values["estimated_accuracy"] == pytest.approx(report.accuracy.accuracy)
        assert values["estimated_accuracy_low"] <= values["estimated_accuracy_high"]
        # Evidently's own per-column view is in the same snapshot
        assert {"ValueDrift", "DriftedColumnsCount"} <= _metric_types(snap)
        # Evidently's test on each p-value fails exactly where xfer's test rejects
        failed = {
            r.metric_value_location.metric.params["column"].removesuffix("_p_value")
            for r in snap.metric_results.values()
            for t in r.tests
            if t.status.value == "FAIL"
            and r.metric_value_location.metric.params["type"].endswith(":MeanValue")
        }
        assert failed == {n for n, t in report.tests.items() if t.drift}
    assert results["invert"].report.drift and not results[None].report.drift

    dashboard = ws.get_dashboard(project.id)
    titles = {p.title for p in dashboard.panels}
    assert {"Verdict (1 = drift)", "Window size", "Estimated accuracy (ATC, label-free)"} <= titles
    assert {f"{t}: p-value vs threshold" for t in results[None].report.tests} <= titles
    assert [t.title for t in dashboard.tabs] == [VERDICT_TAB]
    assert len(dashboard.panels) == len(titles)  # the second window added no duplicate panel


def test_a_workspace_that_cannot_be_written_is_one_warning_and_the_check_goes_on(
    champion: Path,
    fashion: tuple[np.ndarray, np.ndarray],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import shutil

    x, _ = fashion
    ctx = Context.load(champion)
    saved = tmp_path / "saved-workspace"
    if ctx.wd.evidently_workspace.exists():
        shutil.move(ctx.wd.evidently_workspace, saved)
    ctx.wd.evidently_workspace.write_text("a file where the workspace folder should be\n")
    try:
        folder = write_window(tmp_path / "w", x[1300:1400], "invert")
        monitor.score(champion, str(folder), window_id="ws-broken")
        capsys.readouterr()
        result = monitor.drift(champion, window_id="ws-broken")
        assert result.report.drift and result.mlflow_run_id
        warnings = [
            line for line in capsys.readouterr().err.splitlines() if "Evidently workspace" in line
        ]
        assert len(warnings) == 1 and warnings[0].startswith("xfer: warning:")
    finally:
        ctx.wd.evidently_workspace.unlink()
        if saved.exists():
            shutil.move(saved, ctx.wd.evidently_workspace)


def test_with_evidently_off_a_check_adds_no_snapshot(
    champion: Path, fashion: tuple[np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    import yaml
    from evidently.ui.workspace import Workspace

    x, _ = fashion
    ctx = Context.load(champion)
    raw = yaml.safe_load(ctx.wd.params_file.read_text())
    raw["drift"]["evidently"] = False
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(raw))
    ws = Workspace(str(ctx.wd.evidently_workspace))
    pid = project_id(ctx.params.registry.model_name)
    before = len(ws.list_runs(pid)) if ws.get_project(pid) else 0

    folder = write_window(tmp_path / "w", x[1400:1500], "invert")
    monitor.score(champion, str(folder), window_id="ws-off", params_path=str(params))
    result = monitor.drift(champion, window_id="ws-off", params_path=str(params))
    assert result.report.drift and result.report.report_html is None
    assert (len(ws.list_runs(pid)) if ws.get_project(pid) else 0) == before
