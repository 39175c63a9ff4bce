"""Metrics on hand-made predictions, and the files DVC reads."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from tests.model.helpers import make_images, make_model
from xferlib.evaluate import evaluate, expected_calibration_error, metrics_from_probs, write_eval
from xferlib.models.predictor import Predictor

NAMES = ["cat", "dog", "fox"]


def _onehot(pred: list[int], k: int = 3, conf: float = 1.0) -> np.ndarray:
    probs = np.full((len(pred), k), (1 - conf) / (k - 1))
    probs[np.arange(len(pred)), pred] = conf
    return probs


def test_perfect_predictions() -> None:
    labels = np.array([0, 1, 2, 2, 1, 0])
    r = metrics_from_probs(_onehot(labels.tolist()), labels, NAMES)
    assert r.accuracy == 1.0 and r.macro_f1 == 1.0 and r.ece == pytest.approx(0.0)
    assert r.confusion == [[2, 0, 0], [0, 2, 0], [0, 0, 2]]
    assert r.per_class["fox"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 2}


def test_all_wrong_predictions() -> None:
    labels = np.array([0, 1, 2, 0])
    r = metrics_from_probs(_onehot([1, 2, 0, 2]), labels, NAMES)
    assert r.accuracy == 0.0 and r.macro_f1 == 0.0
    assert r.ece == pytest.approx(1.0)  # fully confident and always wrong
    assert r.confusion == [[0, 1, 1], [0, 0, 1], [1, 0, 0]]
    assert r.per_class["cat"]["support"] == 2


def test_hand_made_confusion_gives_textbook_precision_and_recall() -> None:
    # actual cat x3 -> cat, cat, dog; actual dog x2 -> dog, dog; actual fox x1 -> cat
    labels = np.array([0, 0, 0, 1, 1, 2])
    r = metrics_from_probs(_onehot([0, 0, 1, 1, 1, 0]), labels, NAMES)
    assert r.accuracy == pytest.approx(4 / 6)
    assert r.per_class["cat"]["precision"] == pytest.approx(2 / 3)
    assert r.per_class["cat"]["recall"] == pytest.approx(2 / 3)
    assert r.per_class["dog"]["precision"] == pytest.approx(2 / 3)
    assert r.per_class["fox"]["recall"] == 0.0
    f1_cat = 2 / 3  # p = r = 2/3
    f1_dog = 0.8  # p = 2/3, r = 1
    assert r.macro_f1 == pytest.approx((f1_cat + f1_dog + 0) / 3)


def test_ece_is_near_zero_for_a_calibrated_toy_and_large_when_overconfident() -> None:
    rng = np.random.default_rng(0)
    n = 20_000
    conf = rng.uniform(0.4, 1.0, n)
    labels = np.zeros(n, dtype=int)
    correct = rng.uniform(size=n) < conf  # right with exactly the stated confidence
    pred = np.where(correct, 0, 1)
    probs = np.zeros((n, 2))
    probs[np.arange(n), pred] = conf
    probs[np.arange(n), 1 - pred] = 1 - conf
    assert expected_calibration_error(probs, labels) < 0.02
    over = np.zeros((n, 2))
    over[:, 0] = np.where(rng.uniform(size=n) < 0.5, 0.99, 0.01)
    over[:, 1] = 1 - over[:, 0]
    assert expected_calibration_error(over, labels) == pytest.approx(0.49, abs=0.02)


def test_evaluate_and_write_eval_produce_dvc_readable_files(tmp_path) -> None:
    data = make_images(24, seed=3)
    result = evaluate(Predictor.from_classifier(make_model(), NAMES), data)
    assert result.n == 24 and sum(map(sum, result.confusion)) == 24
    write_eval(result, tmp_path / "metrics" / "eval.json", tmp_path / "plots")
    metrics = json.loads((tmp_path / "metrics" / "eval.json").read_text())
    assert isinstance(metrics["accuracy"], float) and isinstance(metrics["macro_f1"], float)
    assert set(metrics["per_class"]) == set(NAMES)
    with open(tmp_path / "plots" / "confusion.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 24 and set(rows[0]) == {"actual", "predicted"}
    hits = sum(r["actual"] == r["predicted"] for r in rows)
    assert hits / 24 == pytest.approx(result.accuracy)
    png = (tmp_path / "plots" / "confusion.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
