"""IDX reader (gzip and raw), the real Fashion-MNIST files, and ImageFolder export."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from xferlib.data.fashion import (
    FASHION_CLASSES,
    export_imagefolder,
    is_idx_source,
    load_fashion_mnist,
    read_idx,
)


@pytest.mark.parametrize("gz", [True, False])
def test_read_idx_round_trips_gzip_and_raw(tmp_path, img, gz):
    rng = np.random.default_rng(0)
    images, labels = rng.integers(0, 256, (5, 28, 28), dtype=np.uint8), np.arange(5, dtype=np.uint8)
    img.write_idx(tmp_path, "t10k", images, labels, gz=gz)
    suffix = ".gz" if gz else ""
    assert np.array_equal(read_idx(tmp_path / f"t10k-images-idx3-ubyte{suffix}"), images)
    assert np.array_equal(
        read_idx(tmp_path / f"t10k-labels-idx1-ubyte{suffix}", limit=3), labels[:3]
    )
    assert is_idx_source(tmp_path) and not is_idx_source(tmp_path / "nothing")


def test_read_idx_rejects_truncated_and_foreign_files(tmp_path, img):
    (tmp_path / "short").write_bytes(img.idx_bytes(np.zeros((4, 28, 28)))[:-10])
    with pytest.raises(ValueError, match="truncated"):
        read_idx(tmp_path / "short")
    (tmp_path / "png").write_bytes(b"\x89PNG\r\n\x1a\n")
    with pytest.raises(ValueError, match="not an IDX file"):
        read_idx(tmp_path / "png")


def test_reads_the_first_100_real_fashion_mnist_images():
    images, labels = load_fashion_mnist(split="train", limit=100)
    assert images.shape == (100, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (100,) and set(labels.tolist()) <= set(range(10))
    assert len(set(labels.tolist())) >= 8  # the real train set is shuffled across classes
    assert 30 < images.mean() < 120  # clothing on black, not noise or zeros
    assert len(FASHION_CLASSES) == 10 and FASHION_CLASSES[0] == "T-shirt/top"


def test_missing_files_say_how_to_install(tmp_path):
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
        load_fashion_mnist(tmp_path, "test")
    with pytest.raises(ValueError, match="valid: 'train', 'test'"):
        load_fashion_mnist(tmp_path, "val")


def test_export_imagefolder_writes_pngs_per_class(tmp_path):
    images = np.stack([np.full((28, 28), i * 20, dtype=np.uint8) for i in range(3)])
    paths = export_imagefolder(images, [0, 9, 0], FASHION_CLASSES, tmp_path / "out", prefix="demo")
    assert [p.parent.name for p in paths] == ["T-shirt%2Ftop", "Ankle boot", "T-shirt%2Ftop"]
    assert np.array_equal(np.asarray(Image.open(paths[1])), images[1])
