"""The one inference path: a loaded model version, uint8 images in, probabilities (and embeddings) out.

`Predictor` applies the model's own `Preprocess` (one resize, straight to the model's input size, then
normalise), so callers never need to know the backbone's input size or statistics. `ServingModule`
is the same model with the preprocessing baked in, for MLflow's pytorch flavour.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from xferlib.data.imageset import Preprocess


@dataclass(frozen=True)
class Prediction:
    labels: list[str]  # the most probable class name per image
    probs: np.ndarray  # (N, num_classes) float32 softmax probabilities
    class_names: list[str]


class Predictor:
    """A loaded model version: uint8 images (N, 3, H, W) in, class names + probabilities out.

    It applies the model's own `Preprocess` (resize + normalise), so callers never need to know
    the backbone's input size or statistics.
    """

    def __init__(self, model: torch.nn.Module, meta: dict[str, Any], name: str, version: str):
        self.model = model.eval()
        self.meta = meta
        self.name = name
        self.version = version
        self.class_names: list[str] = list(meta["class_names"])
        self.preprocess = Preprocess.from_dict(meta["preprocess"])

    @torch.inference_mode()
    def predict_proba(self, images: torch.Tensor | np.ndarray, batch_size: int = 256) -> np.ndarray:
        x = torch.as_tensor(images)
        if x.dtype != torch.uint8 or x.ndim != 4:
            raise ValueError(f"expected uint8 images (N, 3, H, W), got {x.dtype} {tuple(x.shape)}")
        out = [
            torch.softmax(self.model(self.preprocess(x[i : i + batch_size])).float(), dim=1)
            for i in range(0, x.shape[0], batch_size)
        ]
        if not out:
            return np.zeros((0, len(self.class_names)), dtype=np.float32)
        return torch.cat(out).cpu().numpy()

    def predict(self, images: torch.Tensor | np.ndarray, batch_size: int = 256) -> Prediction:
        probs = self.predict_proba(images, batch_size)
        labels = [self.class_names[i] for i in probs.argmax(axis=1).tolist()]
        return Prediction(labels, probs, self.class_names)


class ServingModule(torch.nn.Module):
    """A classifier with its preprocessing baked in, for MLflow's pytorch flavour: uint8 in, logits out."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, classifier: torch.nn.Module, preprocess: Preprocess):
        super().__init__()
        self.classifier = classifier
        size, mean, std = preprocess.image_size, preprocess.mean, preprocess.std
        self.image_size = size
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.float() / 255.0
        size = (self.image_size, self.image_size)
        x = torch.nn.functional.interpolate(
            x, size=size, mode="bilinear", antialias=True, align_corners=False
        )
        return self.classifier((x - self.mean) / self.std)
