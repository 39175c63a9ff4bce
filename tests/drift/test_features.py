import json

import numpy as np
import pandas as pd
import pytest
import torch

from tests.drift.synthetic import images
from xferlib.config import DriftParams
from xferlib.drift import (
    PCAProjector,
    build_reference,
    feature_columns,
    image_properties,
    load_reference,
    monitoring_frame,
)


def test_image_properties_follow_brightness_contrast_blur_and_sizes() -> None:
    x = images(16, size=32, seed=0)
    props = image_properties(x, widths=[64] * 16, heights=[32] * 16)
    assert list(props.columns) == [
        "brightness",
        "contrast",
        "sharpness",
        "width",
        "height",
        "aspect",
    ]
    darker = image_properties((x // 2).to(torch.uint8))
    flat = image_properties(torch.full_like(x, 128))
    blurred = image_properties(
        torch.nn.functional.avg_pool2d(x.float(), 3, 1, 1).round().to(torch.uint8)
    )
    assert (darker.brightness < props.brightness).all() and (darker.contrast < props.contrast).all()
    assert (flat.contrast == 0).all() and (flat.sharpness == 0).all()
    assert (blurred.sharpness < props.sharpness).all()
    assert (props.aspect == 2.0).all() and (flat.width == 32).all()


def test_pca_save_load_round_trip_without_pickle(tmp_path) -> None:
    feats = np.random.default_rng(0).normal(size=(200, 40)) @ np.diag(np.linspace(5, 0.1, 40))
    pca = PCAProjector.fit(feats, 8)
    pca.save(tmp_path / "pca.npz")
    back = PCAProjector.load(tmp_path / "pca.npz")
    np.testing.assert_array_equal(back.transform(feats), pca.transform(feats))
    assert back.n_components == 8 and np.all(np.diff(back.explained_variance) <= 0)
    with np.load(tmp_path / "pca.npz", allow_pickle=False) as z:
        assert all(z[k].dtype != object for k in z.files)
    with pytest.raises(ValueError, match="rebuild the reference"):
        pca.transform(feats[:, :10])


def _scored(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, 5))
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    return probs, rng.normal(size=(n, 24)), image_properties(images(n, size=16, seed=seed))


def test_monitoring_frame_has_model_embedding_property_and_meta_columns() -> None:
    probs, feats, props = _scored(30)
    pca = PCAProjector.fit(feats, 4)
    meta = {"image_id": [f"id{i}" for i in range(30)], "model_version": "3", "window_id": "w1"}
    frame = monitoring_frame(probs, torch.from_numpy(feats), pca, props, meta)
    assert feature_columns(frame) == [
        "pred",
        "max_softmax",
        "emb_0",
        "emb_1",
        "emb_2",
        "emb_3",
        *props.columns,
    ]
    assert frame["pred"].dtype == np.int64 and (frame["pred"] == probs.argmax(1)).all()
    assert np.allclose(frame["max_softmax"], probs.max(1)) and (frame["window_id"] == "w1").all()
    with pytest.raises(ValueError, match="one row each"):
        monitoring_frame(probs[:10], feats, pca, props)


def test_build_reference_writes_parquet_pca_and_card_and_loads_back(tmp_path) -> None:
    probs, feats, props = _scored(60)
    cfg = DriftParams(pca_components=6, reference_size=50)
    ref = build_reference(tmp_path / "v3", probs=probs, features=feats, props=props,
                          model_name="m", model_version=3, cfg=cfg)  # fmt: skip
    card = json.loads((tmp_path / "v3/reference.json").read_text())
    assert card["n"] == 50 and card["model_version"] == "3" and "emb_5" in card["columns"]
    back = load_reference(tmp_path / "v3")
    pd.testing.assert_frame_equal(back.frame, ref.frame)
    assert back.version == "m/v3" and back.pca.n_components == 6
    (tmp_path / "v3/pca.npz").unlink()
    with pytest.raises(FileNotFoundError, match="lacks pca.npz"):
        load_reference(tmp_path / "v3")


def test_pca_projection_of_a_row_does_not_depend_on_its_batch() -> None:
    """A window's monitoring columns must not change with what else was scored alongside."""
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(1200, 256)).astype(np.float32)
    pca = PCAProjector.fit(feats, 16)
    whole = pca.transform(feats[:1000])
    for start, size in ((37, 1), (0, 500), (400, 33), (999, 1)):
        part = pca.transform(feats[start : start + size])
        assert np.array_equal(part, whole[start : start + size]), (start, size)
    centred = feats[:1000] - pca.mean
    assert np.allclose(whole, centred @ pca.components.T, atol=1e-4)  # still the projection
