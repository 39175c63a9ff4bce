"""The Evidently workspace: every checked window becomes a snapshot (Evidently 0.7.23's local
`evidently.ui.workspace.Workspace`), in one project per registered model name, so `evidently ui`
(and `xfer ui`) shows drift over time.

A snapshot is the window's Evidently report, loaded from the dump `evidently_report` saved beside
the HTML: xfer's verdict as Evidently metrics and tests (`evidently_verdict`: `DriftVerdict`,
`DriftTestValue` per test and number, with Evidently's test "p-value > threshold" on each p-value;
`RowCount` = the window size), then Evidently's per-column view. Evidently 0.7 charts only metric
results (tags and metadata only filter snapshots); the dashboard panels chart those metrics.
The label-free accuracy estimate is computed after the check, from the version's labelled
reference (`AccuracyModel`, not a column of the window), so it is added here as the `MeanValue`
of a one-row dataset holding the estimate (`ACCURACY_COLUMNS`). Results and tests are Evidently's
built-in types: the `evidently ui` process needs no xfer class to read the snapshots.
"""

from __future__ import annotations

import os
import uuid
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pandas as pd

from xferlib.atomic import exclusive_lock
from xferlib.drift.check import DriftReport
from xferlib.drift.estimate import AccuracyEstimate

# the one-row dataset of the label-free accuracy estimate
ACCURACY_COLUMNS = ("estimated_accuracy", "estimated_accuracy_low", "estimated_accuracy_high")
VERSION_COLUMN = "model_version"  # the version that scored the window: promotions as steps
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


def _locked(workspace: Path) -> AbstractContextManager[None]:
    """An exclusive lock on the workspace (a dot file: Evidently lists only UUID folders)."""
    return exclusive_lock(workspace / ".xfer.lock")


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
    """The window's report (verdict, then the per-column view) plus the accuracy estimate."""
    from evidently.core.report import Snapshot
    from evidently.core.serialization import SnapshotModel

    dump = report.evidently.get("snapshot_dump")
    if not dump or not Path(dump).exists():
        raise ValueError(
            f"no Evidently report of window {report.report_id} to record (checked with"
            " drift.evidently off, or without an output folder)"
        )
    model = Snapshot.load(dump).to_snapshot_model()
    tags = [report.status, f"v{report.reference_version}"]
    metadata = {"report_id": report.report_id, "reference_version": report.reference_version}
    parts: dict[str, Any] = {"metadata": metadata | meta, "tags": tags}
    extra = _extra_values(report)
    if extra:
        est = _extra_model(extra)
        parts |= {
            "metric_results": {**model.metric_results, **est.metric_results},
            "top_level_metrics": model.top_level_metrics + est.top_level_metrics,
            "widgets": model.widgets + est.widgets,
        }
    keep = ("report", "name", "timestamp", "metric_results", "top_level_metrics", "widgets",
            "tests_widgets")  # fmt: skip
    return Snapshot.load_model(SnapshotModel(**{k: getattr(model, k) for k in keep} | parts))


def _extra_values(report: DriftReport) -> dict[str, float]:
    """Numbers of the window that are not columns of it: the version that scored it (a step in
    its chart is a promotion or a rollback) and the accuracy estimate with its interval."""
    values: dict[str, float] = {}
    version = report.reference_version.rsplit("/", 1)[-1]  # "3", or "name/3" in a model URI
    if version.isdigit():
        values[VERSION_COLUMN] = float(version)
    acc: AccuracyEstimate | None = report.accuracy
    if acc is not None:
        values |= dict(zip(ACCURACY_COLUMNS, (acc.accuracy, acc.low, acc.high), strict=True))
    return values


def _extra_model(values: dict[str, float]) -> Any:
    """`values` as MeanValue metrics of a one-row dataset (see module doc)."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import MeanValue

    data = Dataset.from_pandas(
        pd.DataFrame([values]), data_definition=DataDefinition(numerical_columns=list(values))
    )
    return (
        Report([MeanValue(column=c, tests=[]) for c in values]).run(data, None).to_snapshot_model()
    )


def _panel_metric(metric: str, legend: str, **labels: str) -> Any:
    from evidently.sdk.models import PanelMetric

    return PanelMetric(legend=legend, metric=metric, metric_labels=labels)


def _panels(report: DriftReport) -> list[Any]:
    """Verdict over time, each test's p-value against its threshold, window size, the estimate."""
    from evidently.sdk.panels import bar_plot_panel, line_plot_panel

    m = _panel_metric
    panels = [
        bar_plot_panel("Verdict (1 = drift)", [m("DriftVerdict", "drift")], size="half"),
        line_plot_panel("Window size", [m("RowCount", "rows")], size="half"),
        line_plot_panel(
            "Estimated accuracy (ATC, label-free)",
            [
                m(
                    "MeanValue",
                    c.removeprefix("estimated_accuracy").strip("_") or "estimate",
                    column=c,
                )
                for c in ACCURACY_COLUMNS
            ],
            description="with its interval; absent for a reference without labels",
        ),
        line_plot_panel(
            "Model version scoring the window",
            [m("MeanValue", "version", column=VERSION_COLUMN)],
            description="a step up is a promotion, a step down a rollback",
            size="half",
        ),
    ]
    for name in report.tests:
        panels.append(
            line_plot_panel(
                f"{name}: p-value vs threshold",
                [
                    m("DriftTestValue", "p-value", test=name, value="p_value"),
                    m("DriftTestValue", "threshold", test=name, value="threshold"),
                ],
                description="drift when the p-value falls to the threshold or below",
                size="half",
            )
        )
    return panels


def _ensure_panels(ws: Any, project: Any, report: DriftReport) -> None:
    """Add the panels this report's tests need and the dashboard lacks (matched by title); a panel
    of that title charting other metrics (an older xfer's) is replaced."""
    have = {p.title: p for p in ws.get_dashboard(project.id).panels}
    for panel in _panels(report):
        old = have.get(panel.title)
        if old is not None and _charts(old) == _charts(panel):
            continue
        if old is not None:
            project.dashboard.delete_panel(panel.title, VERDICT_TAB)
        project.dashboard.add_panel(panel, tab=VERDICT_TAB)


def _charts(panel: Any) -> list[tuple[str, dict[str, str]]]:
    return [(v.metric, dict(v.metric_labels)) for v in panel.values]
