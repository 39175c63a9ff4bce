"""Shards + manifest: bytes round-trip, content addressing, appends de-duplicate, ImageSet loading."""

from __future__ import annotations

import hashlib
import io

import numpy as np
import pytest
import torch
from PIL import Image

from xferlib.config import DataParams
from xferlib.data.shards import (
    COLUMNS,
    DatasetWriter,
    load_imageset,
    read_image_bytes,
    read_manifest,
    shard_path,
)
from xferlib.data.validate import Accepted, validate_image


def accepted(img, seed: int, size: int = 16) -> Accepted:
    result = validate_image(img.encode(img.rgb(seed, size)), DataParams())
    assert isinstance(result, Accepted)
    return result


def write(dataset, images, labels, params):
    with DatasetWriter(dataset, params) as w:
        flags = [
            w.add(a, label=lab, split="train", source="t", path=f"p{i}.png")
            for i, (a, lab) in enumerate(zip(images, labels, strict=True))
        ]
    return flags


def test_round_trip_keeps_bytes_and_pixels(tmp_path, img, params):
    images = [accepted(img, s) for s in range(7)]
    write(tmp_path / "ds", images, ["a", "b"] * 3 + ["a"], params)
    manifest = read_manifest(tmp_path / "ds")
    assert list(manifest.columns) == COLUMNS and len(manifest) == 7
    for acc, (_, row) in zip(images, manifest.iterrows(), strict=True):
        assert read_image_bytes(tmp_path / "ds", row) == acc.png
    loaded = load_imageset(tmp_path / "ds", manifest)
    for acc, tensor in zip(images, loaded.images, strict=True):
        pixels = np.asarray(Image.open(io.BytesIO(acc.png)))
        assert np.array_equal(tensor.permute(1, 2, 0).numpy(), pixels)


def test_shards_hold_at_most_shard_size_and_are_named_by_their_hash(tmp_path, img, params):
    write(tmp_path / "ds", [accepted(img, s) for s in range(9)], ["x"] * 9, params)
    manifest = read_manifest(tmp_path / "ds")
    counts = manifest.groupby("shard").size()
    assert sorted(counts.tolist()) == [1, 4, 4]
    for shard in counts.index:
        assert hashlib.sha256(shard_path(tmp_path / "ds", shard).read_bytes()).hexdigest() == shard
    assert not [p for p in (tmp_path / "ds").rglob("*") if p.name.endswith(".tmp")]


def test_appending_skips_images_already_stored(tmp_path, img, params):
    first = [accepted(img, s) for s in range(3)]
    write(tmp_path / "ds", first, ["a"] * 3, params)
    before = {p.name for p in (tmp_path / "ds" / "shards").iterdir()}
    flags = write(
        tmp_path / "ds", [first[0], accepted(img, 50), accepted(img, 50)], ["a", "b", "b"], params
    )
    assert flags == [False, True, False]
    manifest = read_manifest(tmp_path / "ds")
    assert len(manifest) == 4 and manifest["sha256"].is_unique
    assert before < {p.name for p in (tmp_path / "ds" / "shards").iterdir()}  # old shards untouched


def test_failed_write_leaves_previous_manifest(tmp_path, img, params):
    write(tmp_path / "ds", [accepted(img, 1)], ["a"], params)
    with pytest.raises(RuntimeError), DatasetWriter(tmp_path / "ds", params) as w:
        w.add(accepted(img, 2), label="a", split=None, source="t", path="x")
        raise RuntimeError("crash mid-ingest")
    assert len(read_manifest(tmp_path / "ds")) == 1


def test_load_imageset_labels_ids_and_resizes_to_most_common_size(tmp_path, img, params):
    images = [accepted(img, 1, 16), accepted(img, 2, 16), accepted(img, 3, 24)]
    write(tmp_path / "ds", images, ["cat", "dog", "cat"], params)
    manifest = read_manifest(tmp_path / "ds")
    rows = manifest.iloc[[2, 0, 1]]  # any order; two of three rows are 16 px
    out = load_imageset(tmp_path / "ds", rows, {"cat": 0, "dog": 1})
    assert out.images.shape == (3, 3, 16, 16) and out.images.dtype == torch.uint8
    assert out.labels.tolist() == [0, 0, 1]
    assert out.ids == [images[2].sha256, images[0].sha256, images[1].sha256]
    sized = load_imageset(tmp_path / "ds", manifest, None, size=32)
    assert sized.images.shape == (3, 3, 32, 32) and sized.labels is None


def test_load_imageset_names_unknown_labels(tmp_path, img, params):
    write(tmp_path / "ds", [accepted(img, 1)], ["cat"], params)
    with pytest.raises(ValueError, match="'cat'.*not in label_map"):
        load_imageset(tmp_path / "ds", read_manifest(tmp_path / "ds"), {"dog": 0})


def test_gray_dataset_loads_as_three_channels(tmp_path, img):
    gray = DataParams(mode="L", shard_size=4)
    acc = validate_image(img.encode(img.rgb(9)), gray)
    assert isinstance(acc, Accepted)
    write(tmp_path / "ds", [acc], ["a"], gray)
    out = load_imageset(tmp_path / "ds", read_manifest(tmp_path / "ds"))
    assert out.images.shape == (1, 3, 16, 16)
    assert torch.equal(out.images[0, 0], out.images[0, 2])


def test_corrupt_shard_is_detected(tmp_path, img, params):
    write(tmp_path / "ds", [accepted(img, 1)], ["a"], params)
    row = read_manifest(tmp_path / "ds").iloc[0]
    path = shard_path(tmp_path / "ds", row["shard"])
    data = bytearray(path.read_bytes())
    data[40] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(OSError, match="corrupt"):
        read_image_bytes(tmp_path / "ds", row)


def test_second_writer_waits_for_the_first_so_no_rows_are_lost(tmp_path, img, params):
    import threading

    first = DatasetWriter(tmp_path / "ds", params)
    first.add(accepted(img, 1), label="a", split=None, source="t", path="1")

    def second() -> None:
        write(tmp_path / "ds", [accepted(img, 2)], ["b"], params)

    thread = threading.Thread(target=second)
    thread.start()
    thread.join(timeout=0.3)
    assert thread.is_alive()  # blocked on the dataset lock
    first.close()
    thread.join(timeout=10)
    assert not thread.is_alive() and sorted(read_manifest(tmp_path / "ds")["label"]) == ["a", "b"]


def test_writer_with_nothing_new_writes_no_manifest(tmp_path, params):
    with DatasetWriter(tmp_path / "ds", params):
        pass
    assert not (tmp_path / "ds" / "manifest.parquet").exists()


def test_unlabelled_pool_is_every_image_outside_the_splits_without_labels(tmp_path, img, params):
    from xferlib.data.splits import SPLITS, load_unlabelled, make_splits

    images = [accepted(img, s) for s in range(30)]
    labels = ["a", "b", "c"] * 8 + [None] * 6  # six unlabelled images
    write(tmp_path / "ds", images, labels, params)
    manifest = read_manifest(tmp_path / "ds")
    prepared = tmp_path / "prepared"
    prepared.mkdir()
    splits = make_splits(manifest, 0.2, labels_per_class=2, seed=0)  # a few-label run
    splits.to_parquet(prepared / SPLITS, index=False)
    pool = load_unlabelled(tmp_path / "ds", prepared, limit=1000, seed=0)
    in_splits = set(splits["sha256"])
    assert pool.labels is None
    assert set(pool.ids) == set(manifest["sha256"]) - in_splits
    assert len(pool) == 30 - len(splits) and len(pool) > 6  # left-out train images count too
    capped = load_unlabelled(tmp_path / "ds", prepared, limit=4, seed=0)
    assert len(capped) == 4 and set(capped.ids) <= set(pool.ids)
