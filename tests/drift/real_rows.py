"""Real monitoring rows: Fashion-MNIST through the ImageNet-pretrained EfficientNet-Lite0.

As `bench/drift_power.py` builds them: the backbone's pooled features, a logistic-regression head
fitted on `head_rows` images (pred, max_softmax), the PCA of those features (emb_*), and the image
properties. The rows returned are of other images of the same split, so any two disjoint draws
from them are clean windows of one distribution.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from xferlib.data.fashion import load_fashion_mnist
from xferlib.data.imageset import resize_uint8
from xferlib.drift import PCAProjector, image_properties, monitoring_frame


def _features(images: torch.Tensor, image_size: int) -> np.ndarray:
    from xferlib.models import create_backbone

    bb = create_backbone("efficientnet_lite0", image_size=image_size)
    module = bb.module.eval()
    with torch.inference_mode():
        return torch.cat([module(bb.preprocess(b)) for b in images.split(256)]).numpy()


def real_rows(
    rows: int, *, head_rows: int = 2000, image_size: int = 48, pca_components: int = 32
) -> pd.DataFrame:
    """`rows` clean monitoring rows (scored by a head fitted on `head_rows` other images)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = load_fashion_mnist(split="train", limit=head_rows + rows)
    gray = torch.from_numpy(np.ascontiguousarray(x)).unsqueeze(1).expand(-1, 3, -1, -1)
    images = resize_uint8(gray.contiguous(), (image_size, image_size))
    feats = _features(images, image_size)
    head = make_pipeline(StandardScaler(), LogisticRegression(max_iter=300, C=0.05))
    head.fit(feats[:head_rows], y[:head_rows])
    pca = PCAProjector.fit(feats[:head_rows], pca_components)
    sides = np.full(rows, 28)  # the stored size; the batch was resized for the model
    props = image_properties(images[head_rows:], sides, sides)
    probs = head.predict_proba(feats[head_rows:])
    return monitoring_frame(probs, feats[head_rows:], pca, props)
