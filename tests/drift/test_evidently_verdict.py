"""xfer's verdict inside Evidently: the window's Evidently report and test results are the verdict
xfer acts on (the same statistics, p-values, thresholds and pass/fail), the HTML opens with it, and
the workspace snapshot carries it for the dashboard panels. Synthetic rows; Evidently costs ~5 s."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tests.drift.synthetic import window
from xferlib.config import DriftParams
from xferlib.drift import DriftReport, check_drift, run_tests
from xferlib.drift.estimate import AccuracyModel
from xferlib.drift.features import feature_columns

CFG = DriftParams(min_window=100, permutations=200, seed=0)


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    return window(600, np.random.default_rng(10), k=10)


def _window(kind: str) -> pd.DataFrame:
    rng = np.random.default_rng(11)
    if kind == "clean":
        return window(300, rng, k=10)
    cur = window(300, rng, k=10, shift="embedding", amount=1.5)
    cur["brightness"] += 0.3  # a second family rejects too
    return cur


@pytest.fixture(scope="module", params=["clean", "drifted"])
def checked(
    request: pytest.FixtureRequest,
    reference: pd.DataFrame,
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[str, pd.DataFrame, DriftReport]:
    cur = _window(request.param)
    out = tmp_path_factory.mktemp(request.param)
    return (
        request.param,
        cur,
        check_drift(reference, cur, CFG, reference_version="m/1", out_dir=out),
    )


def _by_type(saved: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    """The saved report's metrics of one type (by config type, never by position)."""
    return [m for m in saved["metrics"] if m["config"]["type"].endswith(f":{kind}")]


def test_the_verdict_read_from_evidently_is_xfers_own_run_tests_exactly(
    reference: pd.DataFrame, checked: tuple[str, pd.DataFrame, DriftReport]
) -> None:
    kind, cur, report = checked
    cols = feature_columns(reference)
    direct = run_tests(reference[cols], cur[cols], CFG)
    assert report.tests == direct  # dataclass equality: every float bit-identical, every decision
    fast = check_drift(reference, cur, CFG, reference_version="m/1", render=False)
    assert fast.tests == report.tests and fast.status == report.status
    assert report.status == ("drift" if kind == "drifted" else "no_drift")
    if kind == "drifted":
        assert {"embedding_mmd", "brightness_ks"} <= {n for n, t in direct.items() if t.drift}


def test_the_saved_evidently_report_holds_each_tests_numbers_and_decision(
    checked: tuple[str, pd.DataFrame, DriftReport],
) -> None:
    _, _, report = checked
    saved = json.loads(Path(report.evidently["snapshot_json"]).read_text())
    numbers: dict[tuple[str, str], float] = {}
    for m in _by_type(saved, "DriftTestValue"):
        numbers[m["config"]["test"], m["config"]["value"]] = m["value"]
    assert set(numbers) == {
        (n, v) for n in report.tests for v in ("p_value", "statistic", "threshold")
    }
    for name, t in report.tests.items():
        assert numbers[name, "p_value"] == t.p_value
        assert numbers[name, "statistic"] == t.statistic
        assert numbers[name, "threshold"] == t.threshold
    (verdict,) = _by_type(saved, "DriftVerdict")
    assert verdict["value"] == float(report.drift)
    (size,) = _by_type(saved, "RowCount")
    assert size["value"] == report.window_size
    # the table metric repeats them, one row per test
    (table,) = _by_type(saved, "CalibratedDriftTests")
    rows = pd.DataFrame(table["value"]).set_index("test")
    assert rows["p_value"].to_dict() == {n: t.p_value for n, t in report.tests.items()}


def test_evidently_test_results_are_xfers_decisions_and_nothing_else(
    checked: tuple[str, pd.DataFrame, DriftReport],
) -> None:
    _, _, report = checked
    saved = json.loads(Path(report.evidently["snapshot_json"]).read_text())
    metric_of = {m["id"]: m["config"] for m in saved["metrics"]}
    per_test: dict[str, str] = {}
    verdict_status = []
    for t in saved["tests"]:
        config = metric_of[t["metric_config"]["metric_id"]]
        if config["type"].endswith(":DriftTestValue"):
            assert config["value"] == "p_value"  # only p-values are tested
            per_test[config["test"]] = t["status"]
            assert t["test_config"]["threshold"] == report.tests[config["test"]].threshold
        elif config["type"].endswith(":DriftVerdict"):
            verdict_status.append(t["status"])
        else:  # e.g. the preset's "Share of Drifted Columns": it is not what xfer acts on
            pytest.fail(f"a test xfer does not act on is in the report: {t['name']}")
    assert per_test == {n: "FAIL" if t.drift else "SUCCESS" for n, t in report.tests.items()}
    assert verdict_status == ["FAIL" if report.drift else "SUCCESS"]
    # Evidently's per-column view is still there, beside the verdict
    assert _by_type(saved, "ValueDrift") and report.evidently["columns"]


def test_the_html_opens_with_the_verdict_then_the_per_column_view(
    checked: tuple[str, pd.DataFrame, DriftReport],
) -> None:
    from xferlib.drift.evidently_verdict import VERDICT_TITLE

    _, _, report = checked
    assert report.report_html is not None
    html = Path(report.report_html).read_text()
    status = "DRIFT" if report.drift else "NO DRIFT"
    header = html.find(f"{VERDICT_TITLE}: {status}")
    table = html.find("Calibrated tests (permutation MMD")
    per_column = html.find("Evidently's per-column view")
    preset = html.find("Data Drift Summary")  # DataDriftPreset's own table
    assert -1 < header < table < per_column < preset
    assert "Dataset drift detection threshold" not in html  # the preset's own verdict banner
    for name, t in report.tests.items():
        assert f'"{name}"' in html and f'"{t.p_value:.4g}"' in html


def test_a_window_below_min_window_reports_insufficient_data_in_evidently_too(
    reference: pd.DataFrame, tmp_path: Path
) -> None:
    from xferlib.drift.evidently_verdict import VERDICT_TITLE

    cur = _window("drifted").iloc[: CFG.min_window - 1]
    report = check_drift(reference, cur, CFG, reference_version="m/1", out_dir=tmp_path)
    assert report.status == "insufficient_data" and report.tests == {}
    assert report.report_html is not None
    assert f"{VERDICT_TITLE}: INSUFFICIENT DATA" in Path(report.report_html).read_text()
    saved = json.loads(Path(report.evidently["snapshot_json"]).read_text())
    assert saved["tests"] == [] and _by_type(saved, "DriftVerdict")[0]["value"] == 0.0


def test_the_workspace_snapshot_carries_the_verdict_metrics_the_panels_chart(
    checked: tuple[str, pd.DataFrame, DriftReport], tmp_path: Path
) -> None:
    from evidently.ui.workspace import Workspace

    from xferlib.drift.workspace import project_id, record_window

    _, cur, report = checked
    rng = np.random.default_rng(0)
    fit = AccuracyModel.fit(rng.uniform(0.3, 1.0, 500), rng.uniform(0.0, 1.0, 500) < 0.8)
    report = dataclasses.replace(report, accuracy=fit.estimate(cur["max_softmax"].to_numpy()))
    sid = record_window(tmp_path, "m", report, {"window_id": "w"})

    ws = Workspace(str(tmp_path))
    snap = ws.get_run(project_id("m"), sid)
    assert snap is not None and report.status in snap.tags
    values: dict[tuple[str, ...], float] = {}
    statuses: dict[str, list[str]] = {}
    for r in snap.metric_results.values():
        params = r.metric_value_location.metric.params
        kind = params["type"].rsplit(":", 1)[-1]
        if kind == "DriftTestValue":
            values[kind, params["test"], params["value"]] = r.value
            if params["value"] == "p_value":
                statuses[params["test"]] = [t.status.value for t in r.tests]
            else:
                assert r.tests == []
        elif kind in ("DriftVerdict", "RowCount"):
            values[(kind,)] = r.value
        elif kind == "MeanValue":
            values[kind, params["column"]] = r.value
    assert values["DriftVerdict",] == float(report.drift)
    assert values["RowCount",] == report.window_size
    assert report.accuracy is not None
    assert values["MeanValue", "estimated_accuracy"] == report.accuracy.accuracy
    assert values["MeanValue", "model_version"] == 1.0  # reference_version "m/1": version 1
    for name, t in report.tests.items():
        assert values["DriftTestValue", name, "p_value"] == t.p_value
        assert values["DriftTestValue", name, "threshold"] == t.threshold
        assert statuses[name] == ["FAIL" if t.drift else "SUCCESS"]

    # every panel charts metrics this snapshot has (a panel of another metric would stay empty)
    panels = ws.get_dashboard(project_id("m")).panels
    charted = [(v.metric, v.metric_labels) for p in panels for v in p.values]
    # verdict, size, 3 estimates, the version that scored the window, 2 per test
    assert len(charted) == 6 + 2 * len(report.tests)
    results = [r.metric_value_location.metric.params for r in snap.metric_results.values()]
    for metric, labels in charted:
        assert any(
            params["type"] == metric and all(str(params.get(k)) == v for k, v in labels.items())
            for params in results
        ), (metric, labels)
