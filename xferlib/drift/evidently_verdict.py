"""xfer's calibrated drift verdict as Evidently 0.7 metrics and tests (imports Evidently: load lazily).

Design: the metrics *compute* the verdict. `CalibratedDriftTests` calls xfer's own
`calibrated.run_tests` (the same function, columns, alpha, permutations and seed as `check_drift`'s fast
path) on the report's reference and current datasets, so no second implementation of the
statistics exists and nothing is copied in from outside the report. `check_drift` with Evidently
on reads its verdict back from this report (`read_tests`): the p-values, thresholds and pass/fail a
user sees in the HTML and in `evidently ui` are the ones xfer acts on. (Carrying precomputed numbers
in as metric parameters was the alternative; Evidently's dashboards key their series by metric
parameters, so a per-window number there would split every series, and the report would only
repeat a result computed elsewhere.)

- `CalibratedDriftTests`: a table (DataframeValue), one row per test: statistic, p-value,
  threshold, drift; computed once per report and shared by the metrics below.
- `DriftTestValue(test, value)`: one number of one test (`p_value`, `statistic`, `threshold`); each
  p-value carries Evidently's test "p-value > threshold" (Evidently's own `GreaterThanMetricTest`),
  which FAILs exactly when xfer's test rejects (`p <= threshold`).
- `DriftVerdict`: 1 = drift, 0 = no drift (or too few rows), with the test "= 0".
- `CalibratedDriftPreset`: all of them; renders the verdict first (a header, then the table).

Results are built-in Evidently types (SingleValue, DataframeValue) and the tests built-in ones, so
`evidently ui` reads these snapshots without importing xfer.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import pandas as pd
from evidently.core.container import MetricContainer, MetricOrContainer
from evidently.core.datasets import Dataset
from evidently.core.metric_types import (
    DataframeCalculation,
    DataframeMetric,
    DataframeValue,
    MetricId,
    MetricTestResult,
    SingleValue,
    SingleValueBoundTest,
    SingleValueCalculation,
    SingleValueMetric,
)
from evidently.core.report import Context
from evidently.legacy.model.widget import BaseWidgetInfo
from evidently.legacy.renderers.html_widgets import (
    CounterData,
    WidgetSize,
    counter,
    table_data,
    text_widget,
)
from evidently.tests.numerical_tests import EqualMetricTest, GreaterThanMetricTest

from xferlib.config import DriftParams
from xferlib.drift.calibrated import TestResult, run_tests
from xferlib.drift.features import feature_columns

TABLE_COLUMNS = ("test", "statistic", "p_value", "threshold", "drift")
VALUES = ("p_value", "statistic", "threshold")
VERDICT_TITLE = "xfer verdict (calibrated tests)"
PARAMS = ("alpha", "permutations", "seed", "min_window")  # the DriftParams that decide the tests


class _Calibrated:
    """The parameters that decide the tests (the rest of DriftParams does not enter them)."""

    alpha: float
    permutations: int
    seed: int
    min_window: int

    def params(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in PARAMS}

    def drift_params(self) -> DriftParams:
        return DriftParams(**self.params())


class CalibratedDriftTests(_Calibrated, DataframeMetric):
    """Every calibrated test of the window: xfer's `run_tests` on the report's datasets."""

    alpha: float
    permutations: int
    seed: int
    min_window: int


class CalibratedDriftTestsCalculation(DataframeCalculation[CalibratedDriftTests]):
    def calculate(
        self, context: Context, current_data: Dataset, reference_data: Dataset | None
    ) -> DataframeValue:
        if reference_data is None:
            raise ValueError("xfer's drift tests compare with a reference: pass reference_data")
        ref, cur = reference_data.as_dataframe(), current_data.as_dataframe()
        cfg = self.metric.drift_params()
        rows = []
        if len(cur) >= cfg.min_window:  # as check_drift: fewer rows are "insufficient_data"
            cols = feature_columns(ref)
            tests = run_tests(ref[cols], cur[cols], cfg)
            rows = [
                (n, t.statistic, t.p_value, t.threshold, float(t.drift)) for n, t in tests.items()
            ]
        result = self.result(pd.DataFrame(rows, columns=list(TABLE_COLUMNS)))
        result.widget = [_table_widget(result.value)]
        return result

    def display_name(self) -> str:
        return "xfer calibrated drift tests"


def _tests_table(context: Context, metric: _Calibrated) -> pd.DataFrame:
    """The shared table (computed once per report: Evidently caches it by the metric's id)."""
    calc = CalibratedDriftTests(**metric.params()).to_calculation()
    value = context.calculate_metric(calc)
    assert isinstance(value, DataframeValue)
    return value.value


class DriftTestValue(_Calibrated, SingleValueMetric):
    """One number of one calibrated test; a p-value carries the test "p-value > threshold"."""

    test: str
    value: Literal["p_value", "statistic", "threshold"] = "p_value"
    alpha: float
    permutations: int
    seed: int
    min_window: int


class DriftTestValueCalculation(SingleValueCalculation[DriftTestValue]):
    def calculate(
        self, context: Context, current_data: Dataset, reference_data: Dataset | None
    ) -> SingleValue:
        table = _tests_table(context, self.metric).set_index("test")
        if self.metric.test not in table.index:
            raise ValueError(
                f"no calibrated test {self.metric.test!r} in this window; tests: {list(table.index)}"
            )
        row = table.loc[self.metric.test]
        result = self.result(float(row[self.metric.value]))
        result.widget = []  # shown in the verdict's table, not once per number
        if self.metric.value == "p_value" and self.metric.tests is None:
            result.set_tests([self._threshold_test(context, result, float(row["threshold"]))])
        return result

    def _threshold_test(
        self, context: Context, result: SingleValue, threshold: float
    ) -> MetricTestResult:
        """Evidently's own comparison decides pass/fail; the text shows full precision."""
        bound = SingleValueBoundTest(
            test=GreaterThanMetricTest(threshold=threshold),
            metric_fingerprint=self.metric.get_fingerprint(),
        )
        tested = bound.run_test(context, self, result)
        name = self.metric.test
        tested.name = f"{name}: p-value > {threshold:.4g} (no drift)"
        op = ">" if result.value > threshold else "<="
        tested.description = f"{name}: p-value {result.value:.4g} {op} threshold {threshold:.4g}"
        return tested

    def display_name(self) -> str:
        return f"{self.metric.test} {self.metric.value.replace('_', '-')}"


class DriftVerdict(_Calibrated, SingleValueMetric):
    """1 when any calibrated test rejects at its threshold, else 0; tested "= 0"."""

    alpha: float
    permutations: int
    seed: int
    min_window: int


class DriftVerdictCalculation(SingleValueCalculation[DriftVerdict]):
    def calculate(
        self, context: Context, current_data: Dataset, reference_data: Dataset | None
    ) -> SingleValue:
        table = _tests_table(context, self.metric)
        result = self.result(float(table["drift"].any()))
        n_cur = len(current_data.as_dataframe())
        n_ref = len(reference_data.as_dataframe()) if reference_data is not None else 0
        result.widget = [_verdict_widget(table, n_cur, n_ref, self.metric)]
        if len(table) and self.metric.tests is None:
            bound = SingleValueBoundTest(
                test=EqualMetricTest(expected=0), metric_fingerprint=self.metric.get_fingerprint()
            )
            tested = bound.run_test(context, self, result)
            tested.name = "xfer verdict: no drift (every calibrated test above its threshold)"
            status = "drift" if result.value else "no drift"
            tested.description = f"{status}: {_verdict_line(table)}"
            result.set_tests([tested])
        return result

    def display_name(self) -> str:
        return "xfer verdict (1 = drift)"


class CalibratedDriftPreset(MetricContainer):
    """xfer's verdict, its tests and their numbers; renders the verdict header, then the table."""

    alpha: float
    permutations: int
    seed: int
    min_window: int

    @staticmethod
    def of(cfg: DriftParams) -> CalibratedDriftPreset:
        """The preset for these drift parameters (the ones `check_drift` uses)."""
        return CalibratedDriftPreset(**{k: getattr(cfg, k) for k in PARAMS})

    def generate_metrics(self, context: Context) -> Sequence[MetricOrContainer]:
        params = {k: getattr(self, k) for k in PARAMS}
        table = context.calculate_metric(CalibratedDriftTests(**params).to_calculation())
        assert isinstance(table, DataframeValue)
        values: list[MetricOrContainer] = [
            DriftTestValue(test=name, value=v, **params)  # type: ignore[arg-type]
            for name in table.value["test"]
            for v in VALUES
        ]
        return [DriftVerdict(**params), CalibratedDriftTests(**params), *values]

    def render(
        self,
        context: Context,
        child_widgets: list[tuple[MetricId | None, list[BaseWidgetInfo]]] | None = None,
    ) -> list[BaseWidgetInfo]:
        return [w for _, widgets in child_widgets or [] for w in widgets]  # verdict, then table


def read_tests(metric_results: dict[str, Any]) -> dict[str, TestResult]:
    """xfer's TestResults from a report's metric results: the numbers of the `DriftTestValue`
    metrics and, as the decision, the status of Evidently's test on each p-value (by metric type
    and parameters, never by position)."""
    found: dict[str, dict[str, Any]] = {}
    for result in metric_results.values():
        params = result.metric_value_location.metric.params
        if not str(params.get("type", "")).endswith(":DriftTestValue"):
            continue
        entry = found.setdefault(params["test"], {})
        entry[params["value"]] = float(result.value)
        if params["value"] == "p_value":
            entry["drift"] = any(t.status.value == "FAIL" for t in result.tests)
    return {
        name: TestResult(v["statistic"], v["p_value"], v["threshold"], bool(v["drift"]))
        for name, v in found.items()
    }


def _verdict_line(table: pd.DataFrame) -> str:
    rejected = list(table.loc[table["drift"] > 0, "test"])
    if rejected:
        return (
            f"{', '.join(rejected)} at or below threshold ({len(rejected)} of {len(table)} tests)"
        )
    return f"all {len(table)} tests above their thresholds"


def _verdict_widget(
    table: pd.DataFrame, n_cur: int, n_ref: int, metric: _Calibrated
) -> BaseWidgetInfo:
    if len(table) == 0:
        status = "INSUFFICIENT DATA"
        line = f"{n_cur} rows < drift.min_window {metric.min_window}"
    else:
        status = "DRIFT" if table["drift"].any() else "NO DRIFT"
        line = _verdict_line(table)
    return counter(
        title=f"{VERDICT_TITLE}: {status} ({line})",
        counters=[
            CounterData("verdict", status),
            CounterData("window rows", str(n_cur)),
            CounterData("reference rows", str(n_ref)),
            CounterData("alpha, split over the tests", f"{metric.alpha:g}"),
        ],
    )


def _table_widget(table: pd.DataFrame) -> BaseWidgetInfo:
    rows = [
        (r.test, f"{r.statistic:.4g}", f"{r.p_value:.4g}", f"{r.threshold:.4g}",
         "DRIFT (p <= threshold)" if r.drift else "pass")
        for r in table.itertuples()
    ]  # fmt: skip
    return table_data(
        title="Calibrated tests (permutation MMD, chi-square, KS): what xfer acts on",
        column_names=["test", "statistic", "p-value", "threshold", "decision"],
        data=rows,
        size=WidgetSize.FULL,
    )


def per_column_note(rows: dict[str, int]) -> BaseWidgetInfo:
    """The header of the per-column section: what it is, and that it does not decide."""
    return text_widget(
        title="Evidently's per-column view (DataDriftPreset defaults): informational",
        text=(
            "Evidently's default column tests below (KS / chi-square up to 1000 rows, Wasserstein /"
            " Jensen-Shannon distances with threshold 0.1 above) are not calibrated for a verdict;"
            " xfer does not act on them. The verdict is the section above. Rows used here: "
            f"{rows['reference']} reference, {rows['current']} current."
        ),
    )
