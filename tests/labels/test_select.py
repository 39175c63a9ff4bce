"""Label selection on constructed embeddings: uncertain and diverse images first, reproducibly."""

from __future__ import annotations

import numpy as np
import pytest

from xferlib.labels.select import normalised_entropy, select


def _clusters(sizes: list[int], seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Tight clusters far apart (centres on the axes), with each point's cluster index."""
    rng = np.random.default_rng(seed)
    dim = len(sizes)
    x = [np.eye(dim)[k] * 10 + rng.normal(0, 0.1, (n, dim)) for k, n in enumerate(sizes)]
    return np.concatenate(x), np.repeat(np.arange(len(sizes)), sizes)


def test_entropy_is_zero_for_a_sure_prediction_and_one_for_a_uniform_one() -> None:
    h = normalised_entropy(np.array([[1.0, 0.0, 0.0], [1 / 3, 1 / 3, 1 / 3], [0.5, 0.5, 0.0]]))
    assert h[0] == pytest.approx(0.0, abs=1e-6) and h[1] == pytest.approx(1.0)
    assert 0.0 < h[2] < 1.0


def test_kcenter_covers_every_cluster_where_random_spends_the_budget_on_the_big_one() -> None:
    x, cluster = _clusters([200, 5, 5, 5, 5])  # one big cluster, four small ones
    same = np.full(len(x), 0.5)
    picked = select(x, same, 5, "kcenter_entropy")
    assert sorted(cluster[picked]) == [0, 1, 2, 3, 4]  # one image of each kind
    hits = [len(set(cluster[select(x, same, 5, "random", seed=s)])) for s in range(20)]
    assert np.mean(hits) < 3  # the baseline mostly samples the big cluster


def test_within_a_cluster_the_most_uncertain_image_is_taken_first() -> None:
    x, cluster = _clusters([50, 50])
    u = np.full(len(x), 0.1)
    u[17], u[73] = 0.9, 0.8  # one confusing image in each cluster
    picked = select(x, u, 2, "kcenter_entropy")
    assert list(picked) == [17, 73]


def test_an_uncertain_cluster_gets_more_of_the_budget_than_a_sure_one() -> None:
    x, cluster = _clusters([100, 100])
    x = x + np.random.default_rng(1).normal(0, 1.0, x.shape)  # spread each cluster out
    u = np.where(cluster == 1, 0.95, 0.05)
    picked = select(x, u, 20, "kcenter_entropy")
    assert (cluster[picked] == 1).sum() >= 14  # mostly from the uncertain cluster
    assert (cluster[picked] == 0).sum() >= 1  # but the sure cluster is not ignored


def test_selection_is_deterministic_given_the_seed_and_never_repeats() -> None:
    x, _ = _clusters([30, 30, 30])
    u = np.random.default_rng(2).random(len(x))
    for method in ("kcenter_entropy", "random"):
        a, b = select(x, u, 25, method, seed=3), select(x, u, 25, method, seed=3)  # type: ignore[arg-type]
        assert list(a) == list(b) and len(set(a.tolist())) == 25
    assert list(select(x, u, 25, "random", seed=3)) != list(select(x, u, 25, "random", seed=4))
    assert list(select(x, u, 500)) == list(range(len(x)))  # budget above the pool: everything


def test_an_unknown_method_is_refused_naming_the_valid_ones() -> None:
    x, _ = _clusters([5, 5])
    with pytest.raises(ValueError, match="kcenter_entropy, random"):
        select(x, np.zeros(len(x)), 3, "entropy")  # type: ignore[arg-type]
