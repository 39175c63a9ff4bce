"""fine_tune behaviour on the tiny backbone: strategies, LR groups, resume, cache, bn_adapt."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from tests.model.helpers import Killed, kill_after, make_images, make_model
from xferlib.config import FinetuneParams
from xferlib.data.imageset import ImageSet
from xferlib.finetune import (
    bn_adapt,
    fine_tune,
    param_groups,
    resolve_runtime,
    set_trainable,
    unfrozen_blocks,
)
from xferlib.models.predictor import Predictor

FAST = dict(batch_size=16, lr_backbone=1.0e-3, epochs=4, device="cpu")


def _trainable_blocks(model) -> list[bool]:
    return [all(p.requires_grad for p in b.parameters()) for b in model.blocks()]


def test_gradual_unfreeze_opens_one_block_from_the_top_every_n_epochs(images) -> None:
    model = make_model()
    cfg = FinetuneParams(strategy="gradual_unfreeze", unfreeze_every=2, **{**FAST, "epochs": 6})
    seen: list[list[bool]] = []
    fine_tune(
        model, images, None, cfg, on_epoch=lambda e, row: seen.append(_trainable_blocks(model))
    )
    assert seen == [
        [False, False, False, False],
        [False, False, False, False],
        [False, False, False, True],
        [False, False, False, True],
        [False, False, True, True],
        [False, False, True, True],
    ]
    assert all(p.requires_grad for p in model.head.parameters())


@pytest.mark.parametrize(
    ("strategy", "epoch", "expected"),
    [("linear_probe", 3, 0), ("full", 0, 4), ("scratch", 0, 4), ("lp_ft", 1, 0), ("lp_ft", 2, 4)],
)
def test_unfrozen_blocks_per_strategy(strategy: str, epoch: int, expected: int) -> None:
    cfg = FinetuneParams(strategy=strategy, lp_epochs=2)  # type: ignore[arg-type]
    assert unfrozen_blocks(cfg.strategy, epoch, 4, cfg) == expected
    model = make_model()
    set_trainable(model, expected)
    assert sum(_trainable_blocks(model)) == expected


def test_linear_probe_leaves_the_backbone_untouched(images) -> None:
    model = make_model()
    before = {k: v.clone() for k, v in model.features.state_dict().items()}
    fine_tune(model, images, None, FinetuneParams(strategy="linear_probe", **FAST))
    after = model.features.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # BN buffers included


def test_param_groups_apply_discriminative_lrs_and_layer_decay() -> None:
    model = make_model()
    cfg = FinetuneParams(strategy="full", lr_head=1.0e-2, lr_backbone=1.0e-3, layer_decay=0.5)
    groups = {g["name"]: g["lr"] for g in param_groups(model, cfg)}
    assert groups == pytest.approx(
        {"head": 1e-2, "block3": 1e-3, "block2": 5e-4, "block1": 2.5e-4, "block0": 1.25e-4}
    )
    flat = param_groups(model, dataclasses.replace(cfg, layer_decay=None))
    assert [g["name"] for g in flat] == ["head", "backbone"]
    n_params = sum(len(g["params"]) for g in flat)
    assert n_params == len(list(model.parameters()))
    probe = param_groups(model, cfg, "linear_probe")
    assert [(g["name"], g["lr"]) for g in probe] == [("head", 1e-2)]
    lp_ft_head = param_groups(model, cfg, "lp_ft")[0]
    assert (lp_ft_head["name"], lp_ft_head["lr"]) == ("head", 1e-3)  # probed head: small LR


@pytest.mark.parametrize("strategy", ["scratch", "full", "lp_ft"])
def test_loss_falls_on_a_tiny_batch(images, strategy: str) -> None:
    cfg = FinetuneParams(strategy=strategy, lp_epochs=1, augment=False, **{**FAST, "epochs": 5})
    result = fine_tune(make_model(), images, images, cfg)
    losses = [row["train_loss"] for row in result.history]
    assert losses[-1] < 0.8 * losses[0]
    assert result.best_val_accuracy is not None and result.best_val_accuracy > 0.6


def _state(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("strategy", ["gradual_unfreeze", "lp_ft"])
def test_resume_after_a_kill_gives_bit_identical_weights(tmp_path, images, strategy) -> None:
    cfg = FinetuneParams(strategy=strategy, lp_epochs=2, label_smoothing=0.1, **FAST)
    val = make_images(24, seed=1)
    whole = make_model()
    expected = fine_tune(whole, images, val, cfg)

    ckpt = tmp_path / "ckpt"
    with pytest.raises(Killed):
        fine_tune(make_model(), images, val, cfg, checkpoint_dir=ckpt, on_epoch=kill_after(1))
    assert (ckpt / "last.pt").is_file()
    resumed = make_model(seed=123)  # different init: everything must come from the checkpoint
    result = fine_tune(resumed, images, val, cfg, checkpoint_dir=ckpt, resume=True)

    want, got = _state(whole), _state(resumed)
    assert want.keys() == got.keys()
    assert all(torch.equal(want[k], got[k]) for k in want), "resumed weights differ"
    assert result.epochs_run == expected.epochs_run and result.best_epoch == expected.best_epoch
    assert [r["train_loss"] for r in result.history] == [r["train_loss"] for r in expected.history]


def test_resume_refuses_a_checkpoint_from_other_params(tmp_path, images) -> None:
    cfg = FinetuneParams(strategy="full", **FAST)
    with pytest.raises(Killed):
        fine_tune(make_model(), images, None, cfg, checkpoint_dir=tmp_path, on_epoch=kill_after(0))
    other = dataclasses.replace(cfg, lr_head=0.5)
    with pytest.raises(ValueError, match="lr_head"):
        fine_tune(make_model(), images, None, other, checkpoint_dir=tmp_path, resume=True)


def test_linear_probe_reuses_cached_features_on_a_second_run(tmp_path, images) -> None:
    cfg = FinetuneParams(strategy="linear_probe", **FAST)
    calls = []
    first = make_model()
    first.features.register_forward_hook(lambda *a: calls.append(1))
    fine_tune(first, images, images, cfg, feature_cache=tmp_path)
    assert calls, "the first run must compute features"
    assert len(list(tmp_path.glob("*.pt"))) == 1  # train == val: one key

    calls.clear()
    second = make_model()
    second.features.register_forward_hook(lambda *a: calls.append(1))
    result = fine_tune(second, images, images, cfg, feature_cache=tmp_path)
    assert calls == [], "the backbone ran again despite a cache hit"
    assert result.epochs_run == cfg.epochs

    other = make_images(30, seed=5)  # different ids -> a different key
    fine_tune(make_model(), other, None, cfg, feature_cache=tmp_path)
    assert len(list(tmp_path.glob("*.pt"))) == 2


def test_early_stopping_restores_the_best_weights(images) -> None:
    val = make_images(24, seed=7)
    cfg = FinetuneParams(
        strategy="full", early_stopping_patience=1, lr_head=2.0, **{**FAST, "epochs": 8}
    )
    model = make_model()
    result = fine_tune(model, images, val, cfg)
    probs = Predictor.from_classifier(model).predict_proba(val)
    accuracy = float((probs.argmax(1) == val.labels.numpy()).mean())
    assert accuracy == pytest.approx(result.best_val_accuracy)
    assert result.best_val_accuracy == max(r["val_accuracy"] for r in result.history)


def test_bn_adapt_moves_running_stats_toward_the_target_images() -> None:
    model = make_model()
    source = make_images(32, seed=0)
    fine_tune(model, source, None, FinetuneParams(strategy="full", augment=False, **FAST))
    target = ImageSet((source.images.float() * 0.3).to(torch.uint8))  # darker, unlabelled
    first_bn = model.blocks()[0][1]
    with torch.no_grad():
        conv_out = model.blocks()[0][0](model.preprocess(target.images))
    target_mean = conv_out.mean(dim=(0, 2, 3))
    before = (first_bn.running_mean - target_mean).abs().mean()
    assert bn_adapt(model, target, batch_size=8) == 4
    after = (first_bn.running_mean - target_mean).abs().mean()
    assert after < 0.1 * before
    assert not model.training and first_bn.momentum == 0.1


def test_precision_follows_config_and_backbone_measurement() -> None:
    model = make_model()
    assert resolve_runtime(FinetuneParams(device="cpu"), model).precision == "fp32"  # tiny: not ok
    assert (
        resolve_runtime(FinetuneParams(device="cpu", precision="bf16"), model).precision == "bf16"
    )
    model.spec.cpu_bf16_ok = True
    assert resolve_runtime(FinetuneParams(device="cpu"), model).precision == "bf16"


def test_bf16_training_runs_on_cpu(images) -> None:
    cfg = FinetuneParams(strategy="full", precision="bf16", **{**FAST, "epochs": 2})
    result = fine_tune(make_model(), images, images, cfg)
    assert result.precision == "bf16" and np.isfinite(result.history[-1]["train_loss"])


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_cuda_training_uses_bf16_and_channels_last(images) -> None:
    cfg = FinetuneParams(strategy="full", device="cuda", epochs=2, batch_size=16)
    result = fine_tune(make_model(), images, images, cfg)
    assert result.device == "cuda" and result.precision == "bf16"
