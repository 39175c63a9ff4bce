"""`check_drift`: the calibrated verdict on one monitoring window, plus Evidently's view of it.

Tests and their share of alpha (weighted Bonferroni, so a clean window alarms with probability at
most `cfg.alpha` overall, whatever the dependence between tests). With F families present:
- `embedding_mmd`: permutation MMD on `emb_*` ................................. alpha / F
- `pred_chi2`: permutation chi-square on predicted classes .................... alpha / F
- `max_softmax_ks`: exact KS on the model's confidence ........................ alpha / F
- `<property>_ks`: exact KS on each image property (P of them) ........... alpha / (F * P)
The window drifts if any test rejects at its threshold. Each test is valid at any window size
(permutation or exact nulls; `DriftParams.check` makes B large enough to reach alpha / F), so the
verdict's false-alarm rate is at most alpha at every n: tests/drift/test_false_alarms.py checks
it on 1,000 clean windows at n = 50, 100 and 200.

With Evidently on (`render=True`) these tests run *inside* Evidently's report, as its metrics and
tests (`evidently_verdict.py`: the same `run_tests` on the same columns), and the verdict is read
back from that report, so the HTML, its test results and `evidently ui` show exactly what xfer acts
on. Evidently's own per-column preset follows in the report for information but never decides:
its defaults are not calibrated (see FACTS.md and bench/drift_power.py).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from xferlib.atomic import atomic_write_text
from xferlib.config import DriftParams
from xferlib.drift.calibrated import TestResult, run_tests
from xferlib.drift.estimate import AccuracyEstimate
from xferlib.drift.features import MODEL_COLUMNS, feature_columns

Status = Literal["drift", "no_drift", "insufficient_data"]


class DriftInputError(ValueError):
    """A monitoring window or reference the drift check cannot use; the message names the columns."""


@dataclass(frozen=True)
class DriftReport:
    drift: bool
    status: Status
    window_size: int
    reference_size: int
    reference_version: str
    tests: dict[str, TestResult]
    drifted_columns: list[str]
    evidently: dict[str, Any] = field(default_factory=dict)
    report_html: str | None = None
    report_json: str | None = None
    report_id: str = ""
    accuracy: AccuracyEstimate | None = None  # label-free (ATC); None: the reference has no fit

    def to_dict(self) -> dict[str, Any]:
        """The CLI's `--json` object (and the saved report JSON)."""
        return asdict(self)

    @staticmethod
    def from_dict(raw: dict[str, Any]) -> DriftReport:
        """Parse `to_dict()`'s output (a saved report, an event payload); unknown keys are ignored."""
        known = {f.name for f in fields(DriftReport)}
        tests = {k: TestResult(**v) for k, v in raw.get("tests", {}).items()}
        acc = raw.get("accuracy")
        parsed = {"tests": tests, "accuracy": AccuracyEstimate.from_dict(acc) if acc else None}
        return DriftReport(**{k: v for k, v in raw.items() if k in known} | parsed)


def check_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    cfg: DriftParams,
    *,
    reference_version: str,
    out_dir: Path | None = None,
    render: bool = True,
    save_json: bool = True,
) -> DriftReport:
    """Compare one window of monitoring rows with the reference; see the module doc for the tests.

    `render=False` skips Evidently (the fast path: ~0.1-0.5 s at 100k rows x 64 columns: the same
    `run_tests`, called directly); with `out_dir`, Evidently's HTML + JSON (also for a window too
    small to judge: it says so) and this report's JSON are written there (`report_json`;
    `save_json=False` leaves that file to a caller that adds its own fields, so it is written once).
    """
    cols = _validate(reference, current)
    report_id = _report_id(reference_version, current[cols], cfg)
    sizes: dict[str, Any] = {"window_size": len(current), "reference_size": len(reference)}
    evid: dict[str, Any] = {}
    if render:  # the verdict is computed inside Evidently's report and read back from it
        from xferlib.drift.evidently_adapter import evidently_report

        stem = f"drift-{report_id}"
        tests, evid = evidently_report(
            reference[cols], current[cols], cfg, out_dir=out_dir, stem=stem
        )
    elif len(current) >= cfg.min_window:
        tests = run_tests(reference[cols], current[cols], cfg)
    else:
        tests = {}
    html = evid.pop("html", None)
    if len(current) < cfg.min_window:
        return DriftReport(False, "insufficient_data", **sizes, reference_version=reference_version,
                           tests={}, drifted_columns=[], evidently=evid, report_html=html,
                           report_id=report_id)  # fmt: skip
    drifted = [_column_of(name) for name, t in tests.items() if t.drift]
    json_path = str(Path(out_dir) / f"drift-{report_id}.json") if out_dir is not None else None
    report = DriftReport(
        bool(drifted), "drift" if drifted else "no_drift", **sizes, reference_version=reference_version,
        tests=tests, drifted_columns=drifted, evidently=evid, report_html=html,
        report_json=json_path, report_id=report_id,
    )  # fmt: skip
    if json_path is not None and save_json:
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(json_path, json.dumps(report.to_dict(), indent=2, default=str) + "\n")
    return report


def _column_of(test_name: str) -> str:
    return "embeddings" if test_name == "embedding_mmd" else test_name.rsplit("_", 1)[0]


def _validate(reference: pd.DataFrame, current: pd.DataFrame) -> list[str]:
    """The feature columns to test; raises DriftInputError naming what is empty, missing or NaN."""
    if len(reference) == 0:
        raise DriftInputError("the drift reference has no rows; rebuild it with build_reference()")
    if len(current) == 0:
        raise DriftInputError(
            "the monitoring window has no rows; score some images before checking drift"
        )
    need = [c for c in MODEL_COLUMNS if c not in reference.columns]
    if need:
        raise DriftInputError(
            f"the drift reference lacks columns {need}; rebuild it with build_reference()"
        )
    cols = feature_columns(reference)
    missing = [c for c in cols if c not in current.columns]
    if missing:
        raise DriftInputError(
            f"the monitoring window lacks reference columns {_short(missing)}; score it with the reference's model and PCA"
        )
    for name, frame in (("reference", reference), ("monitoring window", current)):
        bad = [c for c in cols if not pd.api.types.is_numeric_dtype(frame[c])]
        nan = [
            c
            for c in cols
            if c not in bad and not np.isfinite(frame[c].to_numpy(dtype=np.float64)).all()
        ]
        if bad or nan:
            what = (
                f"non-numeric columns {_short(bad)}" if bad else f"NaN/inf in columns {_short(nan)}"
            )
            raise DriftInputError(
                f"the {name} has {what}; drop or re-score those rows before checking drift"
            )
    return cols


def _short(cols: list[str], limit: int = 8) -> str:
    return str(cols) if len(cols) <= limit else f"{cols[:limit]} (+{len(cols) - limit} more)"


def _report_id(reference_version: str, current: pd.DataFrame, cfg: DriftParams) -> str:
    """Content hash: checking the same window against the same reference twice gives the same id.

    A streaming hashlib digest over three parts (not a file's content, so not `xferlib.atomic`)."""
    h = hashlib.sha256(reference_version.encode())
    h.update(pd.util.hash_pandas_object(current, index=False).to_numpy().tobytes())
    h.update(json.dumps(asdict(cfg), sort_keys=True).encode())
    return h.hexdigest()[:16]
