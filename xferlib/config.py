"""params.yaml -> frozen, strict dataclasses.

Configuration says *what* (this file); the environment says *where* (MLFLOW_TRACKING_URI,
AWS_*, PREFECT_API_URL, XFER_ALERT_WEBHOOK). Every section rejects unknown keys, wrong types
and out-of-range values at load time with a message that lists what is valid.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import yaml


class ConfigError(ValueError):
    """A params.yaml problem; the message names the key, the bad value and what is valid."""


Strategy = Literal["scratch", "linear_probe", "full", "gradual_unfreeze", "lp_ft"]
Device = Literal["auto", "cpu", "cuda"]
Precision = Literal["auto", "fp32", "bf16"]
AugmentPolicy = Literal["shift", "trivial_augment", "rand_augment"]
# The drift verdict splits alpha over at most this many test families (embedding MMD, predicted
# class chi-square, confidence KS, image-property KS: see xferlib/drift/check.py).
MAX_TEST_FAMILIES = 4


@dataclass(frozen=True)
class DataParams:
    """Which dataset folder under <workdir>/data the pipeline trains on."""

    dataset: str = "source"
    max_pixels: int = 40_000_000  # decompression-bomb guard (PIL's default warns at ~89M)
    min_side: int = 8  # smaller images (1x1 tracking pixels, icons) are quarantined
    mode: Literal["RGB", "L"] = "RGB"
    shard_size: int = 4096  # images per shard: DVC is slow on many small files


@dataclass(frozen=True)
class PrepareParams:
    val_fraction: float = 0.1
    labels_per_class: int | None = None  # few-label runs: keep this many train images per class
    seed: int = 0

    def check(self) -> None:
        _range("prepare.val_fraction", self.val_fraction, 0.0, 0.9)
        if self.labels_per_class is not None:
            _range("prepare.labels_per_class", self.labels_per_class, 1, 10_000_000)


@dataclass(frozen=True)
class ModelParams:
    backbone: str = "efficientnet_lite0"
    pretrained: bool = True
    weights: str | None = None  # local path or s3:// URI for torchvision backbones
    image_size: int = 96

    def check(self) -> None:
        _range("model.image_size", self.image_size, 16, 1024)


@dataclass(frozen=True)
class FinetuneParams:
    strategy: Strategy = "linear_probe"
    epochs: int = 10
    lp_epochs: int = 5  # lp_ft: epochs of the linear-probe phase
    batch_size: int = 64
    lr_head: float = 1.0e-2
    lr_backbone: float = 1.0e-4
    layer_decay: float | None = None  # layer-wise LR decay (ULMFiT / BEiT); None = one backbone LR
    weight_decay: float = 1.0e-4
    label_smoothing: float = 0.0
    augment: bool = True
    # what `augment` does (xferlib/finetune/recipe.py, torchvision transforms.v2): "shift" = flip and
    # a small shift; "trivial_augment" / "rand_augment" = flip, random resized crop and that policy
    augment_policy: AugmentPolicy = "shift"
    random_erasing: float = 0.0  # probability of torchvision's RandomErasing per image
    mixup_alpha: float = 0.0  # > 0: MixUp (and CutMix when cutmix_alpha > 0, one of them per batch)
    cutmix_alpha: float = 0.0
    warmup_epochs: int = 0  # linear warm-up of every learning rate before the cosine decay
    ema_decay: float | None = None  # e.g. 0.999: validate and keep an EMA of the weights
    # unlabelled images count (xferlib/finetune/semi.py): "pseudo_label" trains a teacher, labels
    # the unlabelled pool where it is confident, then trains a student on both (Noisy Student)
    semi_supervised: Literal["none", "pseudo_label"] = "none"
    pseudo_threshold: float = 0.9  # the teacher's confidence a pseudo-label needs
    pseudo_per_class: int = 500  # at most this many pseudo-labels per class, most confident first
    pseudo_pool: int = 10_000  # unlabelled images the teacher scores (a seeded sample when more)
    unfreeze_every: int = 1  # gradual_unfreeze: epochs between unfreezing the next block
    early_stopping_patience: int = 5
    bn_adapt: bool = False  # re-estimate BatchNorm statistics on target images before training
    # keep a pretrained backbone's BatchNorm running statistics fixed while fine-tuning (its affine
    # weights still train); small batches of small images otherwise drag them off (bench: +25
    # points for gradual_unfreeze, +6 for full at 50 labels/class). Ignored by `scratch`.
    freeze_bn_stats: bool = True
    device: Device = "auto"
    precision: Precision = "auto"
    channels_last: bool = True
    compile: bool = False
    num_workers: int = 0
    seed: int = 0

    def check(self) -> None:
        _range("finetune.epochs", self.epochs, 1, 10_000)
        _range("finetune.lp_epochs", self.lp_epochs, 0, 10_000)
        _range("finetune.batch_size", self.batch_size, 1, 65_536)
        _range("finetune.lr_head", self.lr_head, 0.0, 10.0, low_open=True)
        _range("finetune.lr_backbone", self.lr_backbone, 0.0, 10.0)
        if self.layer_decay is not None:
            _range("finetune.layer_decay", self.layer_decay, 0.0, 1.0, low_open=True)
        _range("finetune.weight_decay", self.weight_decay, 0.0, 1.0)
        _range("finetune.label_smoothing", self.label_smoothing, 0.0, 0.99)
        _range("finetune.random_erasing", self.random_erasing, 0.0, 1.0)
        _range("finetune.mixup_alpha", self.mixup_alpha, 0.0, 100.0)
        _range("finetune.cutmix_alpha", self.cutmix_alpha, 0.0, 100.0)
        _range("finetune.warmup_epochs", self.warmup_epochs, 0, 10_000)
        _range("finetune.pseudo_threshold", self.pseudo_threshold, 0.0, 1.0)
        _range("finetune.pseudo_per_class", self.pseudo_per_class, 1, 10_000_000)
        _range("finetune.pseudo_pool", self.pseudo_pool, 1, 100_000_000)
        if self.ema_decay is not None:
            _range("finetune.ema_decay", self.ema_decay, 0.0, 0.99999, low_open=True)
        _range("finetune.unfreeze_every", self.unfreeze_every, 1, 10_000)
        _range("finetune.early_stopping_patience", self.early_stopping_patience, 1, 10_000)
        _range("finetune.num_workers", self.num_workers, 0, 64)


@dataclass(frozen=True)
class RegistryParams:
    model_name: str = "xfer-classifier"
    primary_metric: Literal["accuracy", "macro_f1"] = "accuracy"
    # challenger must beat champion on the new data by this much; a gain <= 0 never promotes, so a
    # tie (the same images, the same score) keeps the champion whatever this is set to
    min_improvement: float = 0.01
    max_forgetting: float = 0.01  # and may lose at most this much on the original ID holdout
    # floor on the holdout metric: what guards the first version, which has no champion to beat
    min_accuracy: float = 0.5
    # watch after a promotion: for this many windows the previous champion scores in shadow, and
    # the aliases roll back when the new champion's label-free accuracy estimate falls more than
    # rollback_margin below the previous one's on the same window (0 windows: no watch)
    watch_windows: int = 3
    rollback_margin: float = 0.03

    def check(self) -> None:
        _range("registry.watch_windows", self.watch_windows, 0, 100_000)
        _range("registry.rollback_margin", self.rollback_margin, 0.0, 1.0)
        _range("registry.min_improvement", self.min_improvement, 0.0, 1.0)
        _range("registry.max_forgetting", self.max_forgetting, 0.0, 1.0)
        _range("registry.min_accuracy", self.min_accuracy, 0.0, 1.0)


@dataclass(frozen=True)
class DriftParams:
    alpha: float = 0.05  # false-alarm rate of the calibrated verdict on a clean window
    min_window: int = 200  # fewer rows -> "insufficient_data", never "drift"
    pca_components: int = 32
    permutations: int = 200
    consecutive_windows: int = 1  # drifted windows in a row before retraining
    cooldown_minutes: float = 0.0  # no new retrain this soon after the last one
    reference: Literal["latest", "all"] = "latest"  # which training data the reference holds
    reference_size: int = 2000
    evidently: bool = True  # Evidently's per-column report + a workspace snapshot with every check
    seed: int = 0

    def check(self) -> None:
        _range("drift.alpha", self.alpha, 0.0, 0.5, low_open=True)
        _range("drift.min_window", self.min_window, 2, 10_000_000)
        _range("drift.pca_components", self.pca_components, 1, 4096)
        _range("drift.permutations", self.permutations, 19, 100_000)
        self._check_permutations_reach_alpha()
        _range("drift.consecutive_windows", self.consecutive_windows, 1, 1000)
        _range("drift.cooldown_minutes", self.cooldown_minutes, 0.0, 1e6)
        _range("drift.reference_size", self.reference_size, 10, 10_000_000)

    def _check_permutations_reach_alpha(self) -> None:
        """A permutation p-value is at least 1/(B+1); above a test's share of alpha it never rejects."""
        share = self.alpha / MAX_TEST_FAMILIES
        if 1.0 / (self.permutations + 1) > share:
            least = math.ceil(MAX_TEST_FAMILIES / self.alpha - 1e-9) - 1
            raise ConfigError(
                f"drift.permutations={self.permutations} cannot reach alpha/F={share:g} "
                f"(alpha {self.alpha:g} over {MAX_TEST_FAMILIES} test families): use at least {least}"
            )


@dataclass(frozen=True)
class MonitorParams:
    interval_minutes: float = 10.0
    cron: str | None = None  # overrides interval_minutes when set


@dataclass(frozen=True)
class RetrainParams:
    strategy: Strategy = "linear_probe"
    epochs: int = 10
    replay_size: int = 1000  # images of the old training set replayed against forgetting
    bn_adapt: bool = False
    warm_start: bool = True  # start from the champion's weights
    # an open incident retrains once this many of its requested images carry accepted labels
    min_labels: int = 100

    def check(self) -> None:
        _range("retrain.epochs", self.epochs, 1, 10_000)
        _range("retrain.replay_size", self.replay_size, 0, 10_000_000)
        _range("retrain.min_labels", self.min_labels, 1, 10_000_000)


LabelSelection = Literal["kcenter_entropy", "random"]


@dataclass(frozen=True)
class LabelsParams:
    """What an incident asks annotators to label (xferlib/labels/select.py)."""

    budget: int = 200  # images per label request, taken from the incident's drifted windows
    # kcenter_entropy: uncertain under the champion and diverse in its embedding space;
    # random: a uniform sample (the baseline to benchmark selection against)
    selection: LabelSelection = "kcenter_entropy"
    seed: int = 0

    def check(self) -> None:
        _range("labels.budget", self.budget, 1, 1_000_000)


@dataclass(frozen=True)
class DistributedParams:
    nproc: int = 1
    backend: Literal["auto", "gloo", "nccl"] = "auto"

    def check(self) -> None:
        _range("distributed.nproc", self.nproc, 1, 1024)


@dataclass(frozen=True)
class Params:
    data: DataParams = field(default_factory=DataParams)
    prepare: PrepareParams = field(default_factory=PrepareParams)
    model: ModelParams = field(default_factory=ModelParams)
    finetune: FinetuneParams = field(default_factory=FinetuneParams)
    registry: RegistryParams = field(default_factory=RegistryParams)
    drift: DriftParams = field(default_factory=DriftParams)
    monitor: MonitorParams = field(default_factory=MonitorParams)
    retrain: RetrainParams = field(default_factory=RetrainParams)
    labels: LabelsParams = field(default_factory=LabelsParams)
    distributed: DistributedParams = field(default_factory=DistributedParams)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def flat(self) -> dict[str, Any]:
        """`section.key -> value`, for MLflow params."""
        return {f"{s}.{k}": v for s, sec in self.to_dict().items() for k, v in sec.items()}

    def replace(self, **overrides: Any) -> Params:
        """`replace(finetune={"epochs": 3})`: a checked copy with some keys changed."""
        raw = self.to_dict()
        for section, values in overrides.items():
            if section not in raw:
                raise ConfigError(f"unknown params section {section!r}; valid: {sorted(raw)}")
            raw[section].update(values)
        return params_from_dict(raw)


def _range(name: str, value: float, low: float, high: float, low_open: bool = False) -> None:
    bad = value < low or value > high or (low_open and value == low)
    if bad:
        lo = f"({low}" if low_open else f"[{low}"
        raise ConfigError(f"{name}={value!r} is out of range; valid: {lo}, {high}]")


def _type_ok(value: Any, tp: Any) -> bool:
    origin = get_origin(tp)
    if origin is Literal:
        return value in get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, a) for a in get_args(tp))
    if tp is type(None):
        return value is None
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:  # YAML reads 1e-3 as a string: write 1.0e-3
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, tp)


def _describe(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in get_args(tp))
    return "null" if tp is type(None) else getattr(tp, "__name__", str(tp))


# keys that existed once: say what replaced them rather than just "unknown"
_REMOVED = {
    "registry.pytorch_flavor": "every registered version is now one MLflow pyfunc model "
    "(xferlib/registry/pyfunc_model.py) that `mlflow models serve` takes; delete the key",
}


def _section(cls: type, name: str, raw: Any) -> Any:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"params section {name!r} must be a mapping, got {type(raw).__name__}")
    hints = typing.get_type_hints(cls)
    valid = [f.name for f in fields(cls)]
    for key, value in raw.items():
        if f"{name}.{key}" in _REMOVED:
            raise ConfigError(f"{name}.{key} was removed: {_REMOVED[f'{name}.{key}']}")
        if key not in valid:
            raise ConfigError(
                f"unknown key {name}.{key}; valid keys of {name!r}: {', '.join(valid)}"
            )
        tp = hints[key]
        if not _type_ok(value, tp):
            hint = (
                " (write floats as 1.0e-3: YAML reads 1e-3 as a string)"
                if isinstance(value, str)
                else ""
            )
            raise ConfigError(
                f"{name}.{key}={value!r} has the wrong type; expected {_describe(tp)}{hint}"
            )
    if "float" in str(hints):  # ints given for float fields become floats
        raw = {k: (float(v) if hints[k] is float else v) for k, v in raw.items()}
    obj = cls(**raw)
    if hasattr(obj, "check"):
        obj.check()
    return obj


def params_from_dict(raw: dict[str, Any] | None) -> Params:
    raw = raw or {}
    if not isinstance(raw, dict):
        raise ConfigError("params.yaml must be a mapping of sections")
    hints = typing.get_type_hints(Params)
    sections = [f.name for f in fields(Params)]
    unknown = [k for k in raw if k not in sections]
    if unknown:
        raise ConfigError(
            f"unknown params section {unknown[0]!r}; valid sections: {', '.join(sections)}"
        )
    return Params(**{k: _section(hints[k], k, raw[k]) for k in raw})


def load_params(path: str | Path) -> Params:
    """Read and check a params.yaml; a missing file means all defaults."""
    path = Path(path)
    if not path.exists():
        return Params()
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}".splitlines()[0]) from exc
    try:
        return params_from_dict(raw)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
