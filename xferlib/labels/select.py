"""Which drifted images are worth an annotator's time: uncertain under the champion, and diverse.

Uncertainty alone picks near-copies of one confusing kind of image; diversity alone (k-center
greedy, Sener & Savarese 2018, "core-set" active learning) spends labels on easy ones. Here each
greedy step takes the image that maximises `weight * distance to the nearest image taken so
far`, the weight being the champion's normalised predictive entropy (plus a small floor so a
confidently wrong but distant cluster is still reached). Pure numpy; deterministic given `seed`
(which only breaks ties and drives the `random` baseline).
"""

from __future__ import annotations

from typing import Literal

import numpy as np

Method = Literal["kcenter_entropy", "random"]
# weight = FLOOR + (1 - FLOOR) * normalised entropy: a sure image still counts a little
FLOOR = 0.1


def normalised_entropy(probs: np.ndarray) -> np.ndarray:
    """Predictive entropy of each row of `probs` divided by log(classes): 0 sure, 1 uniform."""
    p = np.clip(np.asarray(probs, dtype=np.float64), 1e-12, 1.0)
    if p.ndim != 2 or p.shape[1] < 2:
        raise ValueError(f"probabilities must be (n, classes >= 2), got shape {p.shape}")
    return np.asarray(-(p * np.log(p)).sum(1) / np.log(p.shape[1]))


def select(
    embeddings: np.ndarray,
    uncertainty: np.ndarray,
    budget: int,
    method: Method = "kcenter_entropy",
    seed: int = 0,
) -> np.ndarray:
    """Indices of `budget` rows to label (all rows when there are fewer), in the order chosen."""
    x = np.asarray(embeddings, dtype=np.float64)
    u = np.asarray(uncertainty, dtype=np.float64)
    if x.ndim != 2 or len(u) != len(x):
        raise ValueError(f"need embeddings (n, d) and n uncertainties, got {x.shape}, {u.shape}")
    n, rng = len(x), np.random.default_rng(seed)
    if budget >= n:
        return np.arange(n)
    if method == "random":
        return np.sort(rng.choice(n, size=budget, replace=False))
    if method != "kcenter_entropy":
        raise ValueError(f"unknown selection {method!r}; valid: kcenter_entropy, random")
    weight = FLOOR + (1.0 - FLOOR) * np.clip(u, 0.0, 1.0)
    jitter = rng.random(n) * 1e-9  # breaks exact ties reproducibly
    first = int(np.argmax(weight + jitter))
    chosen = [first]
    nearest = np.linalg.norm(x - x[first], axis=1)
    for _ in range(budget - 1):
        score = weight * nearest + jitter
        score[chosen] = -np.inf
        pick = int(np.argmax(score))
        chosen.append(pick)
        nearest = np.minimum(nearest, np.linalg.norm(x - x[pick], axis=1))
    return np.asarray(chosen)
