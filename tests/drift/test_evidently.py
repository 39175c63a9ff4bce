"""One Evidently test on small data: `import evidently` alone costs ~4 s."""

import json

import numpy as np

from tests.drift.synthetic import window
from xferlib.config import DriftParams
from xferlib.drift import check_drift
from xferlib.drift.evidently_adapter import (
    parse_snapshot,
    preset_verdict,
    report_columns,
    run_preset,
)


def test_evidently_report_is_saved_parsed_by_metric_type_and_matches_the_fast_verdict(
    tmp_path,
) -> None:
    rng = np.random.default_rng(0)
    ref = window(400, rng, k=10)
    cur = window(300, rng, k=10, shift="brightness", amount=3.0)
    cur["contrast"] += 0.3
    report = check_drift(
        ref, cur, DriftParams(min_window=100), reference_version="m/v1", out_dir=tmp_path
    )
    ev = report.evidently
    assert report.drift and {"brightness", "contrast"} <= set(ev["drifted_columns"])
    assert ev["columns"]["pred"]["method"].startswith("chi-square") and "emb_7" in ev["columns"]
    assert ev["drifted_share"] == len(ev["drifted_columns"]) / len(ev["columns"])
    assert set(ev["embeddings"]) == {"method", "score", "drift"}
    assert (
        report.report_html
        and (tmp_path / f"drift-{report.report_id}.evidently.html").stat().st_size > 10_000
    )
    saved = json.loads((tmp_path / f"drift-{report.report_id}.json").read_text())
    assert (
        saved["report_id"] == report.report_id
        and saved["evidently"]["drifted_columns"] == ev["drifted_columns"]
    )

    # Reordered metrics parse the same: results are found by type and column, not by position.
    snap = run_preset(ref, cur, *report_columns(ref)).dict()
    shuffled = {"metrics": snap["metrics"][::-1], "tests": snap["tests"][::-1]}
    assert parse_snapshot(shuffled) == parse_snapshot(snap)

    # The fast verdict used by the power bench agrees with the full Report (drifted and clean).
    num, cat = report_columns(ref)
    everything_moved = window(300, rng, k=10)
    everything_moved[num] = everything_moved[num] * 1.5 + 1.0
    verdicts = set()
    for c in (window(300, rng, k=10), everything_moved):
        full = parse_snapshot(run_preset(ref, c, num, cat).dict())
        fast, share = preset_verdict(ref, c, num, cat)
        assert (fast, share) == (full["dataset_drift"], full["drifted_share"])
        verdicts.add(fast)
    assert verdicts == {True, False}
