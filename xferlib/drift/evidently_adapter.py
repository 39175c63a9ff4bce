"""Evidently's adapter (0.7.23, new API; with `evidently_verdict`, the only Evidently importers).
Imported lazily: `import evidently` costs ~4 s.

A window's report is xfer's verdict computed inside Evidently (`evidently_verdict`: the calibrated
tests as Evidently metrics and tests), followed by Evidently's per-column view (DataDriftPreset:
which columns moved). The preset does not decide drift: its default column tests switch from
p-values to distances with a fixed 0.1 threshold above 1000 reference rows, and "share of drifted
columns >= 0.5" is not calibrated; its tests are left out of the window's report so that the
report's test results are xfer's. Results are read by metric type and column, never by position.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from xferlib.atomic import atomic_write_text
from xferlib.config import DriftParams
from xferlib.drift.calibrated import TestResult
from xferlib.drift.features import PROPERTY_COLUMNS

REPORT_EMB_COLUMNS = 8  # emb_0..emb_7 in the per-column table; all of them in the embedding test
MAX_REPORT_ROWS = 5000  # per side; the preset costs ~30 s at 100k rows


def report_columns(
    frame: pd.DataFrame, n_emb: int = REPORT_EMB_COLUMNS
) -> tuple[list[str], list[str]]:
    """(numerical, categorical) columns the preset looks at."""
    embs = [f"emb_{i}" for i in range(n_emb) if f"emb_{i}" in frame.columns]
    num = ["max_softmax", *embs, *[c for c in PROPERTY_COLUMNS if c in frame.columns]]
    return [c for c in num if c in frame.columns], ["pred"] if "pred" in frame.columns else []


def run_preset(
    reference: pd.DataFrame, current: pd.DataFrame, num: list[str], cat: list[str]
) -> Any:
    """Evidently's DataDriftPreset (with its dataset-level test) on exactly these columns."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    definition = DataDefinition(numerical_columns=num, categorical_columns=cat)
    cols = num + cat
    with np.errstate(
        divide="ignore", invalid="ignore"
    ):  # constant columns (width) warn in correlations
        return Report([DataDriftPreset(drift_share=0.5)], include_tests=True).run(
            current_data=Dataset.from_pandas(current[cols].copy(), data_definition=definition),
            reference_data=Dataset.from_pandas(reference[cols].copy(), data_definition=definition),
        )


def parse_snapshot(snap: dict[str, Any]) -> dict[str, Any]:
    """Per-column drift and the dataset verdict from `snapshot.dict()`, keyed by metric type."""
    columns: dict[str, dict[str, Any]] = {}
    share = count = None
    by_id: dict[str, str] = {}
    for m in snap.get("metrics", []):
        kind = str(m.get("config", {}).get("type", "")).rsplit(":", 1)[-1]
        if kind == "DriftedColumnsCount":
            share, count = float(m["value"]["share"]), int(m["value"]["count"])
            by_id[m["id"]] = "__dataset__"
        elif kind == "ValueDrift":
            cfg = m["config"]
            columns[cfg["column"]] = {
                "method": cfg.get("method"),
                "threshold": cfg.get("threshold"),
                "score": m["value"],
            }
            by_id[m["id"]] = cfg["column"]
    dataset_drift = False
    for t in snap.get("tests", []):
        target = by_id.get(t.get("metric_config", {}).get("metric_id", ""))
        failed = t.get("status") == "FAIL"
        if target == "__dataset__":
            dataset_drift = dataset_drift or failed
        elif target is not None:
            columns[target]["drift"] = failed
    drifted = sorted(c for c, v in columns.items() if v.get("drift"))
    return {"dataset_drift": dataset_drift, "drifted_share": share, "drifted_count": count,
            "drifted_columns": drifted, "columns": columns}  # fmt: skip


def embedding_drift(reference: pd.DataFrame, current: pd.DataFrame) -> dict[str, Any]:
    """Evidently's embedding test by its method call (the EmbeddingsDrift metric always runs TSNE).

    DistanceDriftMethod(bootstrap=True) behaved on clean data in our probes; it reseeds NumPy's
    global RNG and mutates its inputs, so it gets copies and the global state is restored.
    """
    from evidently.metrics.embeddings import DistanceDriftMethod

    embs = [c for c in reference.columns if c.startswith("emb_")]
    if not embs:
        return {}
    state = np.random.get_state()
    try:
        score, drifted, name = DistanceDriftMethod(bootstrap=True)(
            current[embs].copy(), reference[embs].copy()
        )
    finally:
        np.random.set_state(state)
    return {"method": f"{name} (bootstrap)", "score": float(score), "drift": bool(drifted)}


def evidently_report(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    cfg: DriftParams,
    *,
    out_dir: Path | None,
    stem: str,
    seed: int = 0,
) -> tuple[dict[str, TestResult], dict[str, Any]]:
    """The window's Evidently report: xfer's verdict (`evidently_verdict`, on every row), then
    Evidently's per-column preset (on subsampled rows, its tests removed: they do not decide).

    Returns the verdict's tests as read back from the report, and the per-column summary (plus the
    saved HTML/JSON/snapshot paths when `out_dir` is set)."""
    from xferlib.drift.evidently_verdict import read_tests

    verdict = run_verdict(reference, current, cfg)
    tests = read_tests(verdict.metric_results)
    summary: dict[str, Any] = {}
    snap = verdict
    if len(current) >= cfg.min_window:
        ref, cur = _cap(reference, seed), _cap(current, seed + 1)
        preset = run_preset(ref, cur, *report_columns(ref))
        summary = parse_snapshot(preset.dict())
        summary["embeddings"] = embedding_drift(ref, cur)
        summary["rows_used"] = {"reference": len(ref), "current": len(cur)}
        snap = _verdict_then_columns(verdict, preset, summary["rows_used"])
    if out_dir is not None:
        summary.update(_save(snap, Path(out_dir), stem))
    return tests, json.loads(json.dumps(summary, default=float))  # plain JSON types only


def run_verdict(reference: pd.DataFrame, current: pd.DataFrame, cfg: DriftParams) -> Any:
    """xfer's calibrated tests as an Evidently report on these (feature) columns, every row."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import RowCount

    from xferlib.drift.evidently_verdict import CalibratedDriftPreset

    cols = list(reference.columns)
    definition = DataDefinition(
        numerical_columns=[c for c in cols if c != "pred"],
        categorical_columns=["pred"] if "pred" in cols else [],
    )
    return Report([CalibratedDriftPreset.of(cfg), RowCount(tests=[])]).run(
        current_data=Dataset.from_pandas(current[cols].copy(), data_definition=definition),
        reference_data=Dataset.from_pandas(reference[cols].copy(), data_definition=definition),
    )


def _verdict_then_columns(verdict: Any, preset: Any, rows: dict[str, int]) -> Any:
    """One snapshot: the verdict's metrics, widgets and tests first, then the preset's metrics and
    widgets under a note saying they are informational; the preset's own tests and its "Dataset
    Drift is (NOT) detected" banner (a second, uncalibrated verdict) are dropped."""
    from evidently.core.report import Snapshot
    from evidently.core.serialization import SnapshotModel

    from xferlib.drift.evidently_verdict import per_column_note

    first, second = verdict.to_snapshot_model(), preset.to_snapshot_model()
    for result in second.metric_results.values():
        result.tests = []
    columns = [w for w in second.widgets if not _is_preset_verdict(w)]
    merged = SnapshotModel(
        **{k: getattr(first, k) for k in ("report", "name", "timestamp", "metadata", "tags")},
        metric_results={**first.metric_results, **second.metric_results},
        top_level_metrics=first.top_level_metrics + second.top_level_metrics,
        widgets=[*first.widgets, per_column_note(rows), *columns],
        tests_widgets=first.tests_widgets,
    )
    return Snapshot.load_model(merged)


def _is_preset_verdict(widget: Any) -> bool:
    counters = (widget.params or {}).get("counters") or [{}]
    return widget.type == "counter" and counters[0].get("value") == "Dataset Drift"


def _save(snap: Any, out: Path, stem: str) -> dict[str, str]:
    """HTML, the metrics+tests JSON, and the full loadable snapshot (the workspace's copy)."""
    out.mkdir(parents=True, exist_ok=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        snap.save_html(str(out / f"{stem}.evidently.html"))
    snap.save_json(str(out / f"{stem}.evidently.json"))
    dump = out / f"{stem}.snapshot.evidently.json"
    atomic_write_text(dump, snap.dumps())
    return {
        "html": str(out / f"{stem}.evidently.html"),
        "snapshot_json": str(out / f"{stem}.evidently.json"),
        "snapshot_dump": str(dump),
    }


def _cap(frame: pd.DataFrame, seed: int) -> pd.DataFrame:
    if len(frame) <= MAX_REPORT_ROWS:
        return frame
    return frame.sample(MAX_REPORT_ROWS, random_state=seed).reset_index(drop=True)


def preset_verdict(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    num: list[str],
    cat: list[str],
    drift_share: float = 0.5,
) -> tuple[bool, float]:
    """The preset's dataset verdict without building a Report (for benchmarks with many trials):
    Evidently's own default test per column (`get_stattest`), then share >= drift_share.
    A test checks it agrees with `run_preset`."""
    from evidently.legacy.calculations.stattests.registry import get_stattest
    from evidently.legacy.core import ColumnType

    drifted = 0
    for cols, ctype in ((num, ColumnType.Numerical), (cat, ColumnType.Categorical)):
        for c in cols:
            test = get_stattest(reference[c], current[c], ctype, None)
            drifted += bool(test(reference[c], current[c], ctype, None).drifted)
    share = drifted / max(1, len(num) + len(cat))
    return share >= drift_share, share
