"""The one inference path: an image's score depends on the image alone, not on its batch."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.model.helpers import make_images, make_model
from xferlib.config import DataParams
from xferlib.data.imageset import ImageList, ImageSet
from xferlib.data.ingest import scan_folder
from xferlib.models.predictor import FORWARD_BATCH, Predictor

# (height, width) of each file: the model's own 12 px, a most-common 20 px, odd shapes, and more
# files than one forward batch, so the same image lands at other positions of other batches.
SIZES = [(20, 20)] * 21 + [(12, 12)] * 6 + [(31, 17)] * 5 + [(9, 40)] * 4 + [(64, 48)] * 4


def _write_folder(folder: Path, sizes: list[tuple[int, int]], seed: int = 0) -> list[Path]:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    paths = []
    for i, (h, w) in enumerate(sizes):
        path = folder / f"img{i:03d}.png"
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def _scan(folder: Path, tmp_path: Path) -> ImageList:
    images, _, quarantined = scan_folder(folder, DataParams(), tmp_path / "quarantine")
    assert quarantined == {}
    return images


def test_an_image_scores_identically_alone_and_in_a_folder_of_mixed_sizes(tmp_path) -> None:
    predictor = Predictor.from_classifier(make_model())
    paths = _write_folder(tmp_path / "mixed", SIZES)
    assert len(paths) > FORWARD_BATCH
    together = predictor.infer(_scan(tmp_path / "mixed", tmp_path))
    # one of each size, including ones after the first batch
    for i in (0, 21, 27, 32, 36, len(paths) - 1):
        alone_dir = tmp_path / f"alone{i}"
        alone_dir.mkdir()
        shutil.copy(paths[i], alone_dir / paths[i].name)
        alone = predictor.infer(_scan(alone_dir, tmp_path))
        assert np.array_equal(alone.probs[0], together.probs[i]), SIZES[i]
        assert np.array_equal(alone.embeddings[0], together.embeddings[i]), SIZES[i]


def test_a_folder_is_resized_once_straight_to_the_input_size_not_to_its_most_common_size(
    tmp_path,
) -> None:
    """The old path stacked the folder at its most common size (20 px) and resized again to 12."""
    predictor = Predictor.from_classifier(make_model())
    _write_folder(tmp_path / "mixed", SIZES)
    images = _scan(tmp_path / "mixed", tmp_path)
    odd = 27  # a 31x17 image among mostly 20x20 ones
    once = predictor.preprocess(images.images[odd][None])
    with torch.no_grad():
        x = torch.zeros((FORWARD_BATCH, *once.shape[1:]))
        x[0] = once[0]
        expected = predictor.model.eval()(x).softmax(-1)[0].numpy()
    assert np.array_equal(predictor.infer(images).probs[odd], expected)


def test_probabilities_and_embeddings_of_one_pass_equal_separate_feature_and_head_calls() -> None:
    model = make_model()
    predictor = Predictor.from_classifier(model)
    images = make_images(FORWARD_BATCH, seed=4)  # one full forward batch: same shapes as below
    out = predictor.infer(images)
    with torch.no_grad():
        x = model.eval().preprocess(images.images)
        features = model.forward_features(x)
        probs = torch.softmax(model.forward_head(model.forward_features(x)), -1)
    assert torch.equal(torch.from_numpy(out.embeddings), features)
    assert torch.equal(torch.from_numpy(out.probs), probs)
    assert out.probs.dtype == np.float32 and out.embeddings.dtype == np.float32


def test_an_imageset_a_tensor_and_an_image_list_of_the_same_images_score_the_same() -> None:
    predictor = Predictor.from_classifier(make_model())
    images = make_images(40, seed=2)
    from_set = predictor.infer(images)
    as_list = ImageList(tuple(images.images), tuple(images.ids))
    assert np.array_equal(predictor.predict_proba(images.images), from_set.probs)
    assert np.array_equal(predictor.infer(as_list).embeddings, from_set.embeddings)


def test_infer_runs_in_eval_mode_and_restores_the_callers_mode(images) -> None:
    model = make_model()
    model.train()
    out = Predictor.from_classifier(model).infer(images)
    assert out.probs.shape == (48, 3) and out.embeddings.shape == (48, 32)
    assert np.allclose(out.probs.sum(1), 1.0, atol=1e-5)
    assert model.training, "inference must hand the model back in the caller's mode"
    model.eval()
    again = Predictor.from_classifier(model).infer(images)
    assert np.array_equal(again.probs, out.probs), "train mode leaked into inference"


def test_predict_names_the_most_probable_class_and_empty_input_gives_empty_arrays() -> None:
    predictor = Predictor.from_classifier(make_model(), ["cat", "dog", "fox"])
    images = make_images(5, seed=1)
    out = predictor.predict(images)
    assert out.labels == [out.class_names[k] for k in out.probs.argmax(1)]
    empty = predictor.infer(ImageSet(torch.zeros((0, 3, 12, 12), dtype=torch.uint8)))
    assert empty.probs.shape == (0, 3) and empty.embeddings.shape == (0, 32)


def test_bad_inputs_are_refused_with_the_fix_named() -> None:
    predictor = Predictor.from_classifier(make_model())
    with pytest.raises(ValueError, match=r"uint8 images \(N, 3, H, W\).*float32"):
        predictor.infer(torch.zeros((2, 3, 12, 12)))
    with pytest.raises(ValueError, match="2 class names for a 3-class head"):
        Predictor.from_classifier(make_model(), ["a", "b"])
