"""The drift reference stored with each model version: rows + PCA + a small JSON card.

Layout of a reference directory (`references/<name>/v<N>/` in the workdir):
`reference.parquet` (monitoring-frame rows), `pca.npz` (the projector, no pickle) and
`reference.json` (model name/version, n, columns); `accuracy.json` when the images had labels (the
label-free accuracy estimator's fit, `drift.estimate`).

Build it from rows the model was NOT fitted on (a validation split): a model is more confident on
its own training rows, so a training-row reference makes `max_softmax` drift on every clean window.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch

from xferlib.atomic import atomic_write_text, atomic_writer
from xferlib.config import DriftParams
from xferlib.drift.estimate import AccuracyModel
from xferlib.drift.features import PCAProjector, feature_columns, monitoring_frame

if TYPE_CHECKING:
    from xferlib.data.imageset import ImageSet
    from xferlib.models import Classifier

REFERENCE_FILES = ("reference.parquet", "pca.npz", "reference.json")


@dataclass(frozen=True)
class Reference:
    frame: pd.DataFrame
    pca: PCAProjector
    info: dict[str, Any]  # model_name, model_version, n, columns, feature_columns
    accuracy: AccuracyModel | None = None  # ATC's fit (None: built without labels)

    @property
    def version(self) -> str:
        return f"{self.info.get('model_name', '?')}/v{self.info.get('model_version', '?')}"


def sample_rows(n: int, cfg: DriftParams) -> torch.Tensor | None:
    """The seeded subsample of `n` candidate rows a reference keeps (None: keep all n).

    The one place a reference is subsampled: callers with images apply it before the forward
    pass (`build_model_reference`), callers with scored arrays before the PCA fit.
    """
    if n <= cfg.reference_size:
        return None
    g = torch.Generator().manual_seed(cfg.seed)
    return torch.randperm(n, generator=g)[: cfg.reference_size]


def build_reference(
    out_dir: str | Path,
    *,
    probs: np.ndarray | torch.Tensor,
    features: np.ndarray | torch.Tensor,
    props: pd.DataFrame,
    model_name: str,
    model_version: str | int,
    cfg: DriftParams,
    pca: PCAProjector | None = None,
    meta: pd.DataFrame | dict[str, Any] | None = None,
) -> Reference:
    """Write a reference directory; fits the PCA on `features` unless one (fitted on the
    champion's training features) is given. Keeps at most `cfg.reference_size` rows (seeded)."""
    feats = (
        features.detach().cpu().float().numpy()
        if isinstance(features, torch.Tensor)
        else np.asarray(features)
    )
    keep = sample_rows(len(feats), cfg)
    if keep is not None:
        rows = keep.numpy()
        probs, feats, props = probs[rows], feats[rows], props.iloc[rows].reset_index(drop=True)
        if isinstance(meta, pd.DataFrame):
            meta = meta.iloc[rows].reset_index(drop=True)
    return _write(out_dir, probs, feats, props, model_name, model_version, cfg, pca, meta)


def build_model_reference(
    out_dir: str | Path,
    model: Classifier,
    images: ImageSet,
    *,
    model_name: str,
    model_version: str,
    cfg: DriftParams,
) -> Reference:
    """A model's own view of held-out images: PCA-reduced embeddings, predictions, properties.

    Subsampled to `cfg.reference_size` before the forward pass, not after. With labels, the
    label-free accuracy estimator is fit on the same rows (`drift.estimate.AccuracyModel`).
    """
    from xferlib.drift.features import image_properties
    from xferlib.models.predictor import Predictor

    keep = sample_rows(len(images), cfg)
    if keep is not None:
        images = images.subset(keep)
    scores = Predictor.from_classifier(model).infer(images)
    probs, feats = scores.probs, scores.embeddings
    h, w = images.images.shape[-2:]
    props = image_properties(images.images, np.full(len(images), w), np.full(len(images), h))
    ids = images.ids or [str(i) for i in range(len(images))]
    meta = pd.DataFrame({"image_id": ids, "model_version": model_version})
    ref = _write(out_dir, probs, feats, props, model_name, model_version, cfg, None, meta)
    if images.labels is None:
        return ref
    correct = probs.argmax(1) == images.labels.numpy()
    fit = AccuracyModel.fit(probs.max(1), correct)
    fit.save(Path(out_dir))
    return Reference(ref.frame, ref.pca, ref.info, fit)


def _write(
    out_dir: str | Path,
    probs: np.ndarray | torch.Tensor,
    feats: np.ndarray,
    props: pd.DataFrame,
    model_name: str,
    model_version: str | int,
    cfg: DriftParams,
    pca: PCAProjector | None,
    meta: pd.DataFrame | dict[str, Any] | None,
) -> Reference:
    pca = pca or PCAProjector.fit(feats, cfg.pca_components)
    frame = monitoring_frame(probs, feats, pca, props, meta)
    info = {
        "model_name": model_name,
        "model_version": str(model_version),
        "n": len(frame),
        "columns": list(frame.columns),
        "feature_columns": feature_columns(frame),
        "pca_components": pca.n_components,
    }
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_writer(out / "reference.parquet") as f:
        frame.to_parquet(f, index=False)
    pca.save(out / "pca.npz")
    atomic_write_text(out / "reference.json", json.dumps(info, indent=2) + "\n")
    return Reference(frame, pca, info)


def load_reference(ref_dir: str | Path) -> Reference:
    """Read a reference directory written by `build_reference`."""
    ref_dir = Path(ref_dir)
    missing = [f for f in REFERENCE_FILES if not (ref_dir / f).is_file()]
    if missing:
        raise FileNotFoundError(
            f"drift reference {ref_dir} lacks {', '.join(missing)}; build it with build_reference() "
            "(the train stage does this for each model version)"
        )
    info = json.loads((ref_dir / "reference.json").read_text())
    return Reference(
        pd.read_parquet(ref_dir / "reference.parquet"),
        PCAProjector.load(ref_dir / "pca.npz"),
        info,
        AccuracyModel.load(ref_dir),
    )
