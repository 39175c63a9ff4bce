"""The training recipe (xferlib.finetune.recipe): augmentation policies, erasing, MixUp/CutMix,
warm-up, EMA weights; resumable bit for bit like every other run."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from tests.model.helpers import Killed, kill_after, make_images, make_model
from xferlib.config import ConfigError, FinetuneParams, load_params
from xferlib.finetune import fine_tune
from xferlib.finetune.recipe import WARMUP_START, batch_mix, image_transform
from xferlib.models.predictor import Predictor

RECIPE = dict(
    batch_size=16,
    lr_backbone=1.0e-3,
    epochs=4,
    device="cpu",
    augment_policy="trivial_augment",
    random_erasing=0.25,
    mixup_alpha=0.2,
    cutmix_alpha=1.0,
    warmup_epochs=1,
    ema_decay=0.9,
    label_smoothing=0.1,
)


def test_policy_transform_resizes_and_changes_uint8_images_deterministically() -> None:
    images = make_images(8, size=12).images
    for policy in ("trivial_augment", "rand_augment"):
        cfg = FinetuneParams(augment_policy=policy)  # type: ignore[arg-type]
        apply = image_transform(cfg, 20)
        torch.manual_seed(0)
        first = apply(images)
        torch.manual_seed(0)
        again = apply(images)
        assert first.shape == (8, 3, 20, 20) and first.dtype == torch.uint8
        assert torch.equal(first, again), "same seed must give the same augmentation"
        plain = torch.nn.functional.interpolate(images.float(), size=20, mode="bilinear")
        assert (first.float() - plain).abs().mean() > 5, f"{policy} left the images unchanged"


def test_mix_gives_soft_targets_that_sum_to_one() -> None:
    mix = batch_mix(FinetuneParams(mixup_alpha=0.4, cutmix_alpha=1.0), num_classes=3)
    assert mix is not None
    x, y = torch.randn(6, 3, 8, 8), torch.tensor([0, 1, 2, 0, 1, 2])
    mixed, soft = mix(x, y)
    assert soft.shape == (6, 3) and torch.allclose(soft.sum(1), torch.ones(6))
    assert not torch.equal(mixed, x)
    assert (soft.max(1).values < 1).any(), "no target was mixed"
    assert batch_mix(FinetuneParams(), 3) is None


def test_warmup_ramps_every_learning_rate_then_decays(images) -> None:
    cfg = FinetuneParams(strategy="full", **{**RECIPE, "warmup_epochs": 2, "epochs": 5})
    result = fine_tune(make_model(), images, None, cfg)
    lrs = [row["lr"] for row in result.history]  # the head's LR at the start of each epoch
    assert lrs[0] == pytest.approx(cfg.lr_head * WARMUP_START)
    assert lrs[0] < lrs[1] < lrs[2], lrs
    assert lrs[2] > lrs[3] > lrs[4], lrs


def test_ema_weights_are_the_ones_validated_and_kept(images) -> None:
    val = make_images(24, seed=3)
    cfg = FinetuneParams(strategy="full", **RECIPE)
    ema_model = make_model()
    result = fine_tune(ema_model, images, val, cfg)
    probs = Predictor.from_classifier(ema_model).predict_proba(val)
    accuracy = float((probs.argmax(1) == val.labels.numpy()).mean())
    assert accuracy == pytest.approx(result.best_val_accuracy)

    raw_model = make_model()
    fine_tune(raw_model, images, None, dataclasses.replace(cfg, ema_decay=None))
    averaged = make_model()
    fine_tune(averaged, images, None, cfg)  # no val: the last EMA weights are kept
    raw, ema = raw_model.state_dict(), averaged.state_dict()
    assert any(not torch.equal(raw[k], ema[k]) for k in raw), "EMA weights equal the raw ones"


@pytest.mark.parametrize("strategy", ["full", "lp_ft"])
def test_resume_with_the_whole_recipe_gives_bit_identical_weights(tmp_path, images, strategy):
    cfg = FinetuneParams(strategy=strategy, lp_epochs=1, **RECIPE)  # type: ignore[arg-type]
    val = make_images(24, seed=1)
    whole = make_model()
    expected = fine_tune(whole, images, val, cfg)
    ckpt = tmp_path / "ckpt"
    with pytest.raises(Killed):
        fine_tune(make_model(), images, val, cfg, checkpoint_dir=ckpt, on_epoch=kill_after(2))
    resumed = make_model(seed=123)
    result = fine_tune(resumed, images, val, cfg, checkpoint_dir=ckpt, resume=True)
    want, got = whole.state_dict(), resumed.state_dict()
    assert all(torch.equal(want[k], got[k]) for k in want), "resumed weights differ"
    assert [r["train_loss"] for r in result.history] == [r["train_loss"] for r in expected.history]


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("augment_policy", "autoaugment"),
        ("random_erasing", 1.5),
        ("mixup_alpha", -1.0),
        ("warmup_epochs", -1),
        ("ema_decay", 1.0),
    ],
)
def test_params_refuse_a_bad_recipe_value(tmp_path, key: str, value: object) -> None:
    path = tmp_path / "params.yaml"
    path.write_text(f"finetune:\n  {key}: {value}\n")
    with pytest.raises(ConfigError, match=f"finetune.{key}"):
        load_params(path)
