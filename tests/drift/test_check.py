import dataclasses

import numpy as np
import pytest

from tests.drift.synthetic import window
from xferlib.config import DriftParams
from xferlib.drift import DriftInputError, check_drift, run_tests

CFG = DriftParams(min_window=100, permutations=200, seed=0)


@pytest.fixture(scope="module")
def reference():
    return window(1000, np.random.default_rng(100))


def test_thresholds_split_alpha_bonferroni(reference) -> None:
    tests = run_tests(reference, window(300, np.random.default_rng(1)), CFG)
    assert sum(t.threshold for t in tests.values()) == pytest.approx(CFG.alpha)
    assert {"embedding_mmd", "pred_chi2", "max_softmax_ks", "brightness_ks"} <= set(tests)


@pytest.mark.parametrize(
    ("shift", "test_name", "column"),
    [
        ("embedding", "embedding_mmd", "embeddings"),
        ("pred", "pred_chi2", "pred"),
        ("confidence", "max_softmax_ks", "max_softmax"),
        ("brightness", "brightness_ks", "brightness"),
    ],
)
def test_shifted_window_of_500_alarms_on_the_right_test(
    reference, shift: str, test_name: str, column: str
) -> None:
    cur = window(500, np.random.default_rng(2), shift=shift, amount=1.0)
    report = check_drift(reference, cur, CFG, reference_version="m/v1", out_dir=None, render=False)
    assert report.drift and report.status == "drift"
    assert report.tests[test_name].drift and column in report.drifted_columns


def test_small_window_is_insufficient_never_drift(reference) -> None:
    cur = window(99, np.random.default_rng(3), shift="brightness", amount=5.0)
    report = check_drift(reference, cur, CFG, reference_version="m/v1", render=False)
    assert report.status == "insufficient_data" and report.drift is False and report.tests == {}
    assert report.window_size == 99 and report.reference_size == 1000


def test_report_dict_has_the_cli_contract_and_a_stable_id(reference) -> None:
    cur = window(200, np.random.default_rng(4))
    a = check_drift(reference, cur, CFG, reference_version="m/v1", render=False)
    b = check_drift(reference, cur, CFG, reference_version="m/v1", render=False)
    c = check_drift(reference, cur, CFG, reference_version="m/v2", render=False)
    d = a.to_dict()
    assert set(d) == {"drift", "status", "window_size", "reference_size", "reference_version", "tests",
                      "drifted_columns", "evidently", "report_html", "report_json", "report_id", "accuracy"}  # fmt: skip
    assert set(d["tests"]["pred_chi2"]) == {"statistic", "p_value", "threshold", "drift"}
    assert a.report_id == b.report_id != c.report_id
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.drift = True  # type: ignore[misc]


def test_nan_empty_and_missing_columns_raise_one_line_errors(reference) -> None:
    cur = window(300, np.random.default_rng(5))
    with pytest.raises(DriftInputError, match=r"lacks reference columns \['emb_3', 'sharpness'\]"):
        check_drift(
            reference,
            cur.drop(columns=["emb_3", "sharpness"]),
            CFG,
            reference_version="v",
            render=False,
        )
    bad = cur.copy()
    bad.loc[5, "max_softmax"] = np.nan
    with pytest.raises(DriftInputError, match=r"NaN/inf in columns \['max_softmax'\]") as err:
        check_drift(reference, bad, CFG, reference_version="v", render=False)
    assert "\n" not in str(err.value)
    with pytest.raises(DriftInputError, match="no rows"):
        check_drift(reference, cur.iloc[:0], CFG, reference_version="v", render=False)
    with pytest.raises(DriftInputError, match="reference lacks columns"):
        check_drift(reference.drop(columns=["pred"]), cur, CFG, reference_version="v", render=False)
    with pytest.raises(DriftInputError, match="non-numeric"):
        check_drift(reference, cur.assign(width="28"), CFG, reference_version="v", render=False)


def test_meta_columns_pass_through_without_being_tested(reference) -> None:
    cur = window(300, np.random.default_rng(6)).assign(
        window_id="w1", model_version="3", image_id="x"
    )
    report = check_drift(reference, cur, CFG, reference_version="m/v1", render=False)
    assert not any(
        name.startswith(("window_id", "image_id", "model_version")) for name in report.tests
    )


def test_importing_drift_monitoring_and_shifts_does_not_import_evidently() -> None:
    import subprocess
    import sys

    code = "import sys, xferlib.drift, xferlib.monitoring, xferlib.data.shifts; print('evidently' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
