"""Load a registered version for inference, refusing weights that do not match their recorded hash.

The sha256 of `model.pt` was taken when the run logged the model and copied onto the version at
registration (`xfer.weights_sha256`); a file swapped in the artifact store afterwards is refused
before it is unpickled (and unpickling itself is `weights_only`, see `xferlib.models.io`).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from xferlib.data.imageset import Preprocess
from xferlib.registry_client import call_with_retries, mlflow_client
from xferlib.registry_versions import get_version_info, resolve_uri
from xferlib.tracking import MODEL_SUBDIR, SHA_TAG, file_sha256


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


def download_model_dir(tracking_uri: str, run_id: str, dst: Path) -> Path:
    """Copy the run's `xfer_model/` (model.pt + model.json) into `dst`; returns the local folder."""
    client = mlflow_client(tracking_uri)
    local = call_with_retries(
        tracking_uri,
        f"download {MODEL_SUBDIR} of run {run_id}",
        lambda: client.download_artifacts(run_id, MODEL_SUBDIR, str(dst)),
    )
    return Path(local)


def load_predictor(model_uri: str, tracking_uri: str) -> Predictor:
    """`models:/NAME@champion` or `models:/NAME/3` -> a Predictor, after checking the weights' sha256."""
    from xferlib.models.io import ModelIntegrityError, load_model

    name, version = resolve_uri(model_uri, tracking_uri)
    info = get_version_info(tracking_uri, name, version)
    expected = info.tags.get(SHA_TAG)
    if not expected:
        raise ModelIntegrityError(
            f"{name} v{version} has no {SHA_TAG} tag; re-register it with registry.register_candidate"
        )
    with tempfile.TemporaryDirectory(prefix="xfer-model-") as tmp:
        local = download_model_dir(tracking_uri, info.run_id, Path(tmp))
        actual = file_sha256(local / "model.pt")
        if actual != expected:
            raise ModelIntegrityError(
                f"{model_uri} (v{version}): model.pt has sha256 {actual[:12]}… but was registered "
                f"with {expected[:12]}…; refusing to load - re-log and re-register the model"
            )
        model, meta = load_model(local, expected_sha256=expected)
    return Predictor(model, meta, name, version)
