"""Semi-supervised fine-tuning (xferlib.finetune.semi): pseudo-labels and teacher -> student."""

from __future__ import annotations

import pytest
import torch

from tests.model.helpers import make_images, make_model
from xferlib.config import FinetuneParams
from xferlib.data.imageset import ImageSet
from xferlib.finetune import fine_tune
from xferlib.finetune.semi import pseudo_label, self_train
from xferlib.models.predictor import Predictor

FAST = dict(batch_size=16, lr_backbone=1.0e-3, lr_head=3.0e-2, epochs=4, device="cpu")


def _unlabelled(n: int, seed: int) -> ImageSet:
    s = make_images(n, seed=seed)
    return ImageSet(s.images, None, s.ids)


def test_pseudo_labels_are_the_teachers_confident_predictions_capped_per_class(images) -> None:
    teacher = make_model()
    fine_tune(teacher, images, None, FinetuneParams(strategy="full", **FAST))
    pool = _unlabelled(90, seed=4)
    probs = Predictor.from_classifier(teacher).predict_proba(pool)
    threshold = float(torch.tensor(probs.max(1)).median())  # about half the pool passes
    got = pseudo_label(teacher, pool, threshold, per_class=10)
    assert 0 < len(got.images) <= 30 and all(n <= 10 for n in got.per_class)
    assert sum(got.per_class) == len(got.images) and got.scored == 90
    chosen = [pool.ids.index(i) for i in got.images.ids]
    assert (probs[chosen].max(1) >= threshold).all()
    assert got.images.labels.tolist() == probs[chosen].argmax(1).tolist()
    for c in range(3):  # the cap keeps the most confident of each class
        kept = [i for i, lab in zip(chosen, got.images.labels.tolist(), strict=True) if lab == c]
        passing = [i for i in range(90) if probs[i].argmax() == c and probs[i].max() >= threshold]
        if len(passing) > 10:
            floor = min(probs[i].max() for i in kept)
            assert all(probs[i].max() <= floor for i in set(passing) - set(kept))


def test_self_train_keeps_the_better_of_teacher_and_student_on_validation(images) -> None:
    val = make_images(30, seed=9)
    cfg = FinetuneParams(
        strategy="full", semi_supervised="pseudo_label", pseudo_threshold=0.0, **FAST
    )
    model = make_model()
    result = self_train(model, images, _unlabelled(60, seed=5), val, cfg)
    assert result.student is not None and len(result.pseudo.images) == 60  # threshold 0: all
    best = max(result.teacher.best_val_accuracy, result.student.best_val_accuracy)
    probs = Predictor.from_classifier(model).predict_proba(val)
    assert float((probs.argmax(1) == val.labels.numpy()).mean()) == pytest.approx(best)
    assert result.kept == (
        "student"
        if result.student.best_val_accuracy >= result.teacher.best_val_accuracy
        else "teacher"
    )


def test_self_train_without_unlabelled_images_says_what_to_do(images) -> None:
    empty = ImageSet(torch.zeros((0, 3, 12, 12), dtype=torch.uint8), None, [])
    with pytest.raises(ValueError, match="semi_supervised: none"):
        self_train(make_model(), images, empty, None, FinetuneParams(**FAST))
