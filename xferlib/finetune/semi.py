"""Unlabelled images count: teacher -> pseudo-labels -> student (Noisy Student, Xie et al. 2020).

`self_train` fine-tunes a teacher on the labelled images, labels the unlabelled pool where the
teacher is confident (at least `pseudo_threshold`, at most `pseudo_per_class` per class, the most
confident first, so that no class floods the student), then trains a student from the same
starting weights on the labelled images plus the pseudo-labelled ones, with the recipe's
augmentation as the student's noise. With a validation set the better of teacher and student (on
validation) is kept; the result says which. The teacher's and the student's checkpoints live in
`teacher/` and `student/` under `checkpoint_dir`, so a killed run resumes in either phase.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from xferlib.config import FinetuneParams
from xferlib.data.imageset import ImageSet
from xferlib.finetune.epochs import EpochCallback
from xferlib.finetune.train import TrainResult, fine_tune
from xferlib.finetune.world import World
from xferlib.models import Classifier
from xferlib.models.predictor import Predictor


@dataclass(frozen=True)
class PseudoLabels:
    images: ImageSet  # the kept pool images, labelled with the teacher's prediction
    scored: int  # pool images the teacher scored
    per_class: list[int]  # kept per class
    threshold: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "scored": self.scored,
            "kept": len(self.images),
            "per_class": self.per_class,
            "threshold": self.threshold,
        }


@dataclass(frozen=True)
class SelfTrainResult:
    teacher: TrainResult
    student: TrainResult | None  # None when no pool image passed the threshold
    pseudo: PseudoLabels
    kept: str  # "student" | "teacher": which weights the model holds now

    @property
    def final(self) -> TrainResult:
        """The run whose weights the model holds."""
        return self.student if self.kept == "student" and self.student else self.teacher

    def to_dict(self) -> dict[str, Any]:
        return {
            "teacher": self.teacher.to_dict(),
            "student": None if self.student is None else self.student.to_dict(),
            "pseudo_labels": self.pseudo.to_dict(),
            "kept": self.kept,
        }


def pseudo_label(
    model: Classifier, pool: ImageSet, threshold: float, per_class: int
) -> PseudoLabels:
    """The teacher's confident predictions on `pool`, balanced: at most `per_class` per class."""
    probs = Predictor.from_classifier(model).predict_proba(pool)
    conf, pred = probs.max(axis=1), probs.argmax(axis=1)
    keep: list[np.ndarray] = []
    counts = []
    for c in range(model.num_classes):
        idx = np.flatnonzero((pred == c) & (conf >= threshold))
        idx = idx[np.argsort(-conf[idx], kind="stable")][:per_class]
        keep.append(idx)
        counts.append(len(idx))
    chosen = np.sort(np.concatenate(keep)).astype(np.int64)
    images = pool.subset(torch.from_numpy(chosen))
    labelled = ImageSet(images.images, torch.from_numpy(pred[chosen]).long(), images.ids)
    return PseudoLabels(labelled, len(pool), counts, threshold)


def self_train(
    model: Classifier,
    train: ImageSet,
    unlabelled: ImageSet,
    val: ImageSet | None,
    cfg: FinetuneParams,
    *,
    checkpoint_dir: Path | None = None,
    resume: bool = False,
    on_epoch: EpochCallback | None = None,
    world: World | None = None,
) -> SelfTrainResult:
    """Teacher on `train`, pseudo-labels on `unlabelled`, student on both; `model` ends holding
    the kept weights (see the module docstring)."""
    if len(unlabelled) == 0:
        raise ValueError(
            "semi_supervised=pseudo_label needs unlabelled images; pass a pool or set finetune.semi_supervised: none"
        )
    start = copy.deepcopy(model.state_dict())
    ckpt = Path(checkpoint_dir) if checkpoint_dir is not None else None
    teacher = fine_tune(
        model, train, val, cfg, checkpoint_dir=_sub(ckpt, "teacher"), resume=resume,
        on_epoch=on_epoch, world=world,
    )  # fmt: skip
    pseudo = pseudo_label(model, unlabelled, cfg.pseudo_threshold, cfg.pseudo_per_class)
    if len(pseudo.images) == 0:
        return SelfTrainResult(teacher, None, pseudo, "teacher")
    teacher_state = copy.deepcopy(model.state_dict())
    model.load_state_dict(start)
    offset = teacher.epochs_run  # the student's epochs follow the teacher's in logs and charts
    student = fine_tune(
        model, ImageSet.concat([train, pseudo.images]), val, cfg,
        checkpoint_dir=_sub(ckpt, "student"), resume=resume, world=world,
        on_epoch=None if on_epoch is None else lambda e, row: on_epoch(e + offset, row),
    )  # fmt: skip
    if val is not None and (student.best_val_accuracy or 0.0) < (teacher.best_val_accuracy or 0.0):
        model.load_state_dict(teacher_state)
        return SelfTrainResult(teacher, student, pseudo, "teacher")
    return SelfTrainResult(teacher, student, pseudo, "student")


def _sub(ckpt: Path | None, name: str) -> Path | None:
    return None if ckpt is None else ckpt / name
