"""A retrain refuses feedback that shares images (by content sha256) with the gate's ID holdout."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from xferlib.context import Context
from xferlib.data.fashion import FASHION_CLASSES, export_imagefolder, load_fashion_mnist
from xferlib.data.shards import read_manifest
from xferlib.stages import data, retrain


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A work directory with 100 Fashion-MNIST images ingested and split (no model, no MLflow)."""
    tmp = tmp_path_factory.mktemp("disjoint")
    x, y = load_fashion_mnist(split="train", limit=100)
    export_imagefolder(x, y, FASHION_CLASSES, tmp / "src", "s")
    root = tmp / "wd"
    data.init(root)
    data.ingest(root, tmp / "src", push=False)
    data.prepare(root)
    return root


def holdout_files(root: Path, k: int) -> list[tuple[str, Path]]:
    """(class folder, stored source path) of k images of the test split."""
    splits = pd.read_parquet(root / "prepared" / "splits.parquet")
    test = set(splits.loc[splits["split"] == "test", "sha256"])
    manifest = read_manifest(Context.load(root).wd.dataset("source"))
    rows = manifest[manifest["sha256"].isin(test)].head(k)
    return [(Path(p).parent.name, Path(p)) for p in rows["path"]]


def test_retrain_refuses_feedback_holding_holdout_images(prepared: Path, tmp_path: Path) -> None:
    fb = tmp_path / "feedback"
    x, y = load_fashion_mnist(split="test", limit=20)
    export_imagefolder(x, y, FASHION_CLASSES, fb, "fb")
    for i, (label, src) in enumerate(holdout_files(prepared, 4)):
        shutil.copy(prepared.parent / "src" / label / src.name, fb / label / f"renamed_{i}.png")
    with pytest.raises(ValueError) as err:
        retrain.retrain(prepared, fb, feedback_id="leaky")
    msg = str(err.value)
    assert msg.startswith("4 feedback image(s) of feedback-leaky are also in the ID holdout")
    assert "renamed_" in msg and "sha256" in msg and "remove them" in msg and "\n" not in msg


def test_feedback_of_new_images_passes_the_check(prepared: Path, tmp_path: Path) -> None:
    x, y = load_fashion_mnist(split="test", limit=20)
    export_imagefolder(np.asarray(x), y, FASHION_CLASSES, tmp_path / "fb", "fb")
    data.ingest(prepared, tmp_path / "fb", dataset="feedback-clean", push=False)
    retrain.check_feedback_disjoint(Context.load(prepared), "feedback-clean")
