"""Fine-tuning a backbone whose BatchNorm statistics were estimated (pretrained, or a champion)
keeps those statistics fixed by default; a random-init network still learns its own."""

from __future__ import annotations

import torch

from tests.model.helpers import make_images, make_model
from xferlib.config import FinetuneParams
from xferlib.data.imageset import ImageSet
from xferlib.finetune import bn_adapt, fine_tune
from xferlib.finetune.layers import bn_stats_estimated

FAST = dict(batch_size=16, lr_backbone=1.0e-3, epochs=2, device="cpu", augment=False)


def _bn_means(model) -> list[torch.Tensor]:
    return [
        m.running_mean.clone()
        for m in model.modules()
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
    ]


def _weights(model) -> torch.Tensor:
    return torch.cat([p.detach().flatten().clone() for p in model.features.parameters()])


def _estimated_model(images: ImageSet):
    model = make_model()
    assert not bn_stats_estimated(model)  # fresh init: mean 0 / var 1
    bn_adapt(model, make_images(seed=1))  # now it holds statistics of some other images
    assert bn_stats_estimated(model)
    return model


def test_full_fine_tune_keeps_estimated_bn_statistics_but_trains_the_weights(
    images: ImageSet,
) -> None:
    model = _estimated_model(images)
    means, weights = _bn_means(model), _weights(model)
    fine_tune(model, images, None, FinetuneParams(strategy="full", **FAST))
    assert all(torch.equal(a, b) for a, b in zip(means, _bn_means(model), strict=True))
    assert not torch.equal(weights, _weights(model))


def test_freeze_bn_stats_false_lets_the_statistics_move(images: ImageSet) -> None:
    model = _estimated_model(images)
    means = _bn_means(model)
    fine_tune(model, images, None, FinetuneParams(strategy="full", freeze_bn_stats=False, **FAST))
    assert any(not torch.equal(a, b) for a, b in zip(means, _bn_means(model), strict=True))


def test_a_random_init_network_estimates_its_own_statistics(images: ImageSet) -> None:
    model = make_model()
    fine_tune(model, images, None, FinetuneParams(strategy="full", **FAST))
    assert bn_stats_estimated(model)
