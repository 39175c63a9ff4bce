"""The Evidently workspace: every checked window becomes a snapshot (Evidently 0.7.23's local
`evidently.ui.workspace.Workspace`), in one project per registered model name, so `evidently ui`
(and `xfer ui`) shows drift over time.

A snapshot holds the window's Evidently report (the per-column view, loaded from the dump that
`evidently_summary` saved beside the HTML) and xfer's verdict as Evidently metrics a dashboard can
chart. Evidently 0.7 charts only metric results (tags and metadata only filter snapshots), so the
verdict numbers are the `MeanValue` of a one-row dataset whose columns are the numbers
(`VERDICT_COLUMNS`, `<test>_p_value`, `<test>_threshold`); each p-value carries Evidently's own
test `p_value > threshold`, which FAILs exactly when xfer's test rejects. Built-in metrics only:
the `evidently ui` process needs no xfer class to read the snapshots.
"""

from __future__ import annotations

import fcntl
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from xferlib.drift.check import DriftReport

# one-row "verdict" dataset: these columns, then a p-value and a threshold per test
VERDICT_COLUMNS = ("drift", "window_size", "reference_size")
ACCURACY_COLUMNS = ("estimated_accuracy", "estimated_accuracy_low", "estimated_accuracy_high")
VERDICT_TAB = "xfer verdict"
_NAMESPACE = uuid.UUID("5d1f8f0e-8f5e-4f0c-9a61-3c4b0a1e7f21")  # project id = uuid5(this, name)


def project_id(model_name: str) -> uuid.UUID:
    """A fixed id per model name: concurrent writers create the same project, never two."""
    return uuid.uuid5(_NAMESPACE, f"xfer-model:{model_name}")


def snapshot_counts(workspace: Path) -> dict[str, int]:
    """Snapshot files per project id, from the folders alone (Evidently's local layout:
    `<project id>/snapshots/<snapshot id>.json`): cheap enough to poll."""
    if not workspace.is_dir():
        return {}
    return {
        p.name: sum(1 for _ in (p / "snapshots").glob("*.json"))
        for p in workspace.iterdir()
        if (p / "snapshots").is_dir()
    }


def verdict_values(report: DriftReport) -> dict[str, float]:
    """xfer's verdict as named numbers (the columns of the one-row verdict dataset)."""
    values = {
        "drift": float(report.drift),
        "window_size": float(report.window_size),
        "reference_size": float(report.reference_size),
    }
    for name, t in report.tests.items():
        values[f"{name}_p_value"] = float(t.p_value)
        values[f"{name}_threshold"] = float(t.threshold)
    if report.accuracy is not None:
        acc = report.accuracy
        values.update(zip(ACCURACY_COLUMNS, (acc.accuracy, acc.low, acc.high), strict=True))
    return values


def record_window(
    workspace: Path, model_name: str, report: DriftReport, meta: dict[str, str] | None = None
) -> str:
    """Add the window's snapshot to the model's project (created with its dashboard on first use);
    returns the snapshot id. `meta` (window id, MLflow run id...) becomes snapshot metadata."""
    from evidently.ui.workspace import Workspace

    snap = _snapshot(report, meta or {})
    with _locked(workspace):  # concurrent checks: one project, no duplicate panels
        ws = Workspace(str(workspace))
        project = _project(ws, model_name)
        # Evidently writes the file in place; a half-written one stops `evidently ui` from
        # starting, so the snapshot is written in a staging workspace and renamed into place
        staging = workspace / ".staging"
        ref = Workspace(str(staging)).add_run(
            project.id, snap, name=f"{report.report_id} ({report.status})"
        )
        written = Path(ref.url)
        final = workspace / written.relative_to(staging)
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(written, final)
        _ensure_panels(ws, project, report)
    return str(ref.id)


@contextmanager
def _locked(workspace: Path) -> Iterator[None]:
    """An exclusive lock on the workspace (a dot file: Evidently lists only UUID folders)."""
    workspace.mkdir(parents=True, exist_ok=True)
    with open(workspace / ".xfer.lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _project(ws: Any, model_name: str) -> Any:
    from evidently.sdk.models import ProjectModel

    pid = project_id(model_name)
    found = ws.get_project(pid)
    if found is not None:
        return found
    desc = (
        "xfer drift checks: one snapshot per window (Evidently's per-column view + xfer's verdict)"
    )
    return ws.add_project(ProjectModel(id=pid, name=model_name, description=desc))


def _snapshot(report: DriftReport, meta: dict[str, str]) -> Any:
    """One snapshot: the verdict metrics, then the Evidently preset's results when it ran."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.core.report import Snapshot
    from evidently.core.serialization import SnapshotModel
    from evidently.metrics import MeanValue
    from evidently.tests import gt

    values = verdict_values(report)
    thresholds = {f"{n}_p_value": t.threshold for n, t in report.tests.items()}
    metrics = [
        MeanValue(column=c, tests=[gt(thresholds[c])] if c in thresholds else None) for c in values
    ]
    data = Dataset.from_pandas(
        pd.DataFrame([values]), data_definition=DataDefinition(numerical_columns=list(values))
    )
    tags = [report.status, f"v{report.reference_version}"]
    metadata = {"report_id": report.report_id, "reference_version": report.reference_version}
    verdict = Report(metrics).run(data, None, tags=tags, metadata=metadata | meta)
    model = verdict.to_snapshot_model()
    preset = _preset_model(report)
    if preset is not None:  # the per-column view after the verdict
        model = SnapshotModel(
            **{k: getattr(model, k) for k in ("report", "name", "timestamp", "metadata", "tags")},
            metric_results={**model.metric_results, **preset.metric_results},
            top_level_metrics=model.top_level_metrics + preset.top_level_metrics,
            widgets=model.widgets + preset.widgets,
            tests_widgets=model.tests_widgets + preset.tests_widgets,
        )
    return Snapshot.load_model(model)


def _preset_model(report: DriftReport) -> Any:
    """Evidently's own snapshot of the window, as `evidently_summary` dumped it (None: not run)."""
    from evidently.core.report import Snapshot

    dump = report.evidently.get("snapshot_dump")
    if not dump or not Path(dump).exists():
        return None
    return Snapshot.load(dump).to_snapshot_model()


def _panel_metric(column: str, legend: str) -> Any:
    from evidently.sdk.models import PanelMetric

    return PanelMetric(legend=legend, metric="MeanValue", metric_labels={"column": column})


def _panels(report: DriftReport) -> list[Any]:
    """Verdict over time, each test's p-value against its threshold, window size, the estimate."""
    from evidently.sdk.panels import bar_plot_panel, line_plot_panel

    m = _panel_metric
    panels = [
        bar_plot_panel("Verdict (1 = drift)", [m("drift", "drift")], size="half"),
        line_plot_panel("Window size", [m("window_size", "rows")], size="half"),
        line_plot_panel(
            "Estimated accuracy (ATC, label-free)",
            [
                m(c, c.removeprefix("estimated_accuracy").strip("_") or "estimate")
                for c in ACCURACY_COLUMNS
            ],
            description="with its interval; absent for a reference without labels",
        ),
    ]
    for name in report.tests:
        panels.append(
            line_plot_panel(
                f"{name}: p-value vs threshold",
                [m(f"{name}_p_value", "p-value"), m(f"{name}_threshold", "threshold")],
                description="drift when the p-value falls to the threshold or below",
                size="half",
            )
        )
    return panels


def _ensure_panels(ws: Any, project: Any, report: DriftReport) -> None:
    """Add the panels this report's tests need and the dashboard lacks (matched by title)."""
    have = {p.title for p in ws.get_dashboard(project.id).panels}
    for panel in _panels(report):
        if panel.title not in have:
            project.dashboard.add_panel(panel, tab=VERDICT_TAB)
