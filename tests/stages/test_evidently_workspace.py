"""Every checked window becomes a snapshot of the model's project in the work dir's Evidently
workspace: the window's report (xfer's verdict as Evidently metrics and tests, then Evidently's
per-column view) plus the accuracy estimate, which the dashboard charts; a workspace that cannot
be written costs one warning line, never the check."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.flows.conftest import write_window
from xferlib.context import Context
from xferlib.drift.workspace import VERDICT_TAB, project_id
from xferlib.stages import monitor


def _values(snapshot: Any) -> dict[tuple[str, ...], float]:
    """(metric type, its labels...) -> value, for the metrics the dashboard panels chart."""
    out: dict[tuple[str, ...], float] = {}
    for result in snapshot.metric_results.values():
        params = result.metric_value_location.metric.params
        kind = params["type"].rsplit(":", 1)[-1]
        if kind in ("DriftVerdict", "RowCount", "DriftTestValue", "MeanValue"):
            labels = tuple(str(params[k]) for k in ("test", "value", "column") if k in params)
            out[(kind, *labels)] = float(result.value)
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
        values = _values(snap)
        assert values["DriftVerdict",] == float(report.drift)
        assert values["RowCount",] == 100.0
        for test, t in report.tests.items():
            assert values["DriftTestValue", test, "p_value"] == t.p_value
            assert values["DriftTestValue", test, "threshold"] == t.threshold
        assert report.accuracy is not None
        assert values["MeanValue", "estimated_accuracy"] == pytest.approx(report.accuracy.accuracy)
        low, high = (
            values["MeanValue", "estimated_accuracy_low"],
            values["MeanValue", "estimated_accuracy_high"],
        )
        assert low <= high
        # Evidently's own per-column view is in the same snapshot
        assert {"ValueDrift", "DriftedColumnsCount"} <= _metric_types(snap)
        # Evidently's tests are xfer's: one per p-value, failing exactly where xfer's test rejects
        failed = {
            r.metric_value_location.metric.params["test"]
            for r in snap.metric_results.values()
            for t in r.tests
            if t.status.value == "FAIL"
            and r.metric_value_location.metric.params["type"].endswith(":DriftTestValue")
        }
        assert failed == {n for n, t in report.tests.items() if t.drift}
        tested = {r.metric_value_location.metric.params["type"].rsplit(":", 1)[-1]
                  for r in snap.metric_results.values() if r.tests}  # fmt: skip
        assert tested == {"DriftTestValue", "DriftVerdict"}
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
