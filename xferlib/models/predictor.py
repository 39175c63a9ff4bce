"""The one inference path: uint8 images in, probabilities and embeddings out of one forward pass.

Serving (`xfer predict`), scoring, evaluation and reference building all go through `Predictor`,
so an image is scored the same way everywhere. Two properties make its score a function of the
image alone, not of the batch it arrives in:

- every image is resized once, by the model's own `Preprocess`, straight from its decoded size
  to the model's input size (loose files arrive as an `ImageList` at their own sizes);
- the network always sees batches of exactly `batch_size` rows (the last one zero-padded).
  Convolution and matmul kernels pick their blocking by batch shape, so the same image gave
  probabilities differing in the last bits alone and inside a batch of 37 (measured, CPU);
  with one fixed shape its row is computed identically at any position.

MLflow clients reach it too: a registered version is a pyfunc model over a Predictor
(`xferlib/registry/pyfunc_model.py`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from xferlib.data.imageset import ImageList, ImageSet, Preprocess
from xferlib.models.classifier import Classifier
from xferlib.progress import bar

# The fixed forward shape. Part of the numerics (another size gives other last bits), so it is
# a property of the Predictor, not of a call. 32 rather than the old 256: a single image pays
# for a whole padded batch, and on CPU efficientnet_lite0 at 96 px took 2-3x longer per image in
# batches of 256 than of 32 (one thread, 3 interleaved pairs, a shared 2-core machine).
FORWARD_BATCH = 32

Images = ImageSet | ImageList | torch.Tensor | np.ndarray


@dataclass(frozen=True)
class Prediction:
    labels: list[str]  # the most probable class name per image
    probs: np.ndarray  # (N, num_classes) float32 softmax probabilities
    class_names: list[str]


@dataclass(frozen=True)
class Inference:
    """What one forward pass gives for N images: what drift scoring and evaluation both read."""

    probs: np.ndarray  # (N, num_classes) float32 softmax probabilities
    embeddings: np.ndarray  # (N, feature_dim) float32 penultimate features (forward_features)


class Predictor:
    """A model ready to score: uint8 images (any size) in, probabilities + embeddings out.

    It applies the model's own `Preprocess` (one resize + normalise), so callers never need to
    know the backbone's input size or statistics. Inference runs in fp32 without autocast on the
    device the model sits on, in eval mode (the caller's mode is restored afterwards), as the
    drift reference and the scored windows must be computed alike.
    """

    def __init__(
        self,
        model: Classifier,
        meta: dict[str, Any],
        name: str,
        version: str,
        batch_size: int = FORWARD_BATCH,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"Predictor batch_size={batch_size} must be >= 1")
        self.model = model
        self.meta = meta
        self.name = name
        self.version = version
        self.batch_size = batch_size
        self.class_names: list[str] = list(meta["class_names"])
        self.preprocess = Preprocess.from_dict(meta["preprocess"])

    @classmethod
    def from_classifier(
        cls, model: Classifier, class_names: Sequence[str] | None = None
    ) -> Predictor:
        """An in-memory classifier (e.g. right after training); class names default to "0".."C-1"."""
        names = (
            [str(i) for i in range(model.num_classes)] if class_names is None else list(class_names)
        )
        if len(names) != model.num_classes:
            raise ValueError(
                f"{len(names)} class names for a {model.num_classes}-class head; pass one per class"
            )
        meta = {"class_names": names, "preprocess": model.preprocess.to_dict()}
        return cls(model, meta, name="", version="")

    @torch.inference_mode()
    def infer(self, images: Images) -> Inference:
        """Probabilities and embeddings of every image, from one pass through the backbone."""
        steps = -(-len(images) // self.batch_size)
        batches = bar(_as_batches(images, self.batch_size), "inference", steps, "batch")
        probs, feats = [], []
        was_training = self.model.training
        self.model.eval()
        try:
            for n, groups in batches:
                x = self._prepare(groups)
                f = self.model.forward_features(x)
                probs.append(self.model.forward_head(f).float().softmax(-1)[:n].cpu())
                feats.append(f.float()[:n].cpu())
        finally:
            self.model.train(was_training)
        if not probs:
            k, d = len(self.class_names), self.model.spec.feature_dim
            return Inference(np.zeros((0, k), np.float32), np.zeros((0, d), np.float32))
        return Inference(torch.cat(probs).numpy(), torch.cat(feats).numpy())

    def predict_proba(self, images: Images) -> np.ndarray:
        return self.infer(images).probs

    def predict(self, images: Images) -> Prediction:
        probs = self.predict_proba(images)
        labels = [self.class_names[i] for i in probs.argmax(axis=1).tolist()]
        return Prediction(labels, probs, self.class_names)

    def _prepare(self, groups: list[tuple[list[int], torch.Tensor]]) -> torch.Tensor:
        """One normalised (batch_size, 3, S, S) batch; rows past the images stay zero."""
        device = next(self.model.parameters()).device
        side = self.preprocess.image_size
        x = torch.zeros((self.batch_size, 3, side, side), device=device)
        for idx, group in groups:
            x[idx] = self.preprocess(group.to(device))
        return x


def _as_batches(
    images: Images, batch_size: int
) -> Iterator[tuple[int, list[tuple[list[int], torch.Tensor]]]]:
    """(number of images, [(positions, uint8 stack of one size)]) per batch of `batch_size`."""
    if isinstance(images, ImageList):
        for start in range(0, len(images), batch_size):
            part = images.slice(start, start + batch_size)
            yield len(part), part.by_size()
        return
    x = images.images if isinstance(images, ImageSet) else torch.as_tensor(images)
    if x.dtype != torch.uint8 or x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(
            f"expected uint8 images (N, 3, H, W), got {x.dtype} {tuple(x.shape)}; "
            "convert grayscale to 3 channels and floats back to 0..255 uint8"
        )
    for start in range(0, x.shape[0], batch_size):
        batch = x[start : start + batch_size]
        yield batch.shape[0], [(list(range(batch.shape[0])), batch)]
