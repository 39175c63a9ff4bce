"""Training-time feature extraction and the on-disk cache that makes linear probing cheap.

A frozen backbone maps an image to the same features every epoch, so they are computed once and
the head trains on the cached (N, D) matrix: FACTS measured 9-11x faster at 10 epochs. The cache
key is (hash of the backbone's weights and buffers, hash of the image ids, image size, precision),
so a changed backbone (e.g. after bn_adapt) or a different data version never reuses stale rows.
Inference for serving, scoring and evaluation is `xferlib.models.predictor.Predictor`, not this.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from torch import nn

from xferlib.atomic import atomic_writer
from xferlib.data.imageset import ImageSet
from xferlib.finetune.runtime import Runtime, model_runtime
from xferlib.models import Classifier
from xferlib.progress import bar


def state_hash(module: nn.Module) -> str:
    """sha256 over a module's state_dict (names, dtypes, shapes and bytes, in key order).

    Like `ids_hash` and the cache key, a streaming hashlib digest of in-memory parts (a cache key,
    not a file's content hash), so it does not go through `xferlib.atomic`."""
    h = hashlib.sha256()
    for name, t in module.state_dict().items():
        t = t.detach().cpu().contiguous().reshape(-1)
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)};".encode())
        h.update(t.view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def ids_hash(images: ImageSet) -> str:
    """Hash of the images' ids (content hashes), or of the pixels when ids are missing."""
    h = hashlib.sha256()
    if images.ids:
        h.update("\n".join(images.ids).encode())
    else:
        h.update(images.images.contiguous().numpy().tobytes())
    return h.hexdigest()


@torch.no_grad()
def extract_features(
    model: Classifier, images: ImageSet, batch_size: int = 256, runtime: Runtime | None = None
) -> torch.Tensor:
    """Pooled backbone features (N, D) float32 on CPU, computed in eval mode."""
    rt = runtime or model_runtime(model)
    was_training = model.training
    model.eval()
    out = []
    for start in bar(range(0, len(images), batch_size), "features", unit="batch"):
        x = model.preprocess(rt.to_device(images.images[start : start + batch_size]))
        with rt.autocast():
            out.append(model.forward_features(rt.layout(x)).float().cpu())
    model.train(was_training)
    return torch.cat(out) if out else torch.zeros(0, model.spec.feature_dim)


def cached_features(
    model: Classifier,
    images: ImageSet,
    cache_dir: Path | None,
    runtime: Runtime,
    batch_size: int = 256,
) -> torch.Tensor:
    """`extract_features`, read from / written to `cache_dir` when one is given."""
    if cache_dir is None:
        return extract_features(model, images, batch_size, runtime)
    parts = [
        state_hash(model.features),
        ids_hash(images),
        str(model.preprocess.image_size),
        runtime.precision,
    ]
    path = Path(cache_dir) / (hashlib.sha256("|".join(parts).encode()).hexdigest()[:32] + ".pt")
    if path.is_file():
        feats = torch.load(path, map_location="cpu", weights_only=True)
        if feats.shape == (len(images), model.spec.feature_dim):
            return feats
    feats = extract_features(model, images, batch_size, runtime)
    with atomic_writer(path) as f:
        torch.save(feats, f)
    return feats
