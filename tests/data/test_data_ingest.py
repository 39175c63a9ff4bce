"""ingest / scan_folder over real files: bad files quarantined by reason, good ones stored once."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from xferlib.data.fashion import FASHION_CLASSES
from xferlib.data.ingest import ingest, scan_folder
from xferlib.data.shards import load_imageset, read_manifest


def snapshot(root: Path) -> dict[str, int]:
    return {
        str(p.relative_to(root)): p.stat().st_size for p in root.rglob("*") if not p.is_symlink()
    }


def run(tmp_path: Path, src: Path, params, **kw):
    kw.setdefault("source", "test")
    return ingest(src, tmp_path / "ds", tmp_path / "q", params, **kw)


def test_each_bad_file_is_quarantined_with_its_reason_and_good_ones_pass(tmp_path, img, params):
    src = tmp_path / "src"
    bad, good = img.bad_files(), img.good_files()
    img.write_files(src / "shirts", {n: d for n, (d, _) in bad.items()} | good)
    before = snapshot(src)
    result = run(tmp_path, src, params)
    expected: dict[str, int] = {}
    for _, reason in bad.values():
        expected[reason] = expected.get(reason, 0) + 1
    assert result.quarantined == expected
    assert result.accepted == len(good) and result.total == len(good) + len(bad)
    assert snapshot(src) == before  # copied, never moved or changed
    log = [
        json.loads(line) for line in (tmp_path / "q" / "quarantine.jsonl").read_text().splitlines()
    ]
    assert {Path(r["path"]).name: r["reason"] for r in log} == {n: r for n, (_, r) in bad.items()}
    for row in log:
        assert row["source"] == "test" and row["time"] and row["detail"]
        if row["reason"] != "empty_file":
            assert (tmp_path / "q" / row["sha256"]).read_bytes() == bad[Path(row["path"]).name][0]
    manifest = read_manifest(tmp_path / "ds")
    assert set(manifest["label"]) == {"shirts"} and set(manifest["path"]) == {
        f"shirts/{n}" for n in good
    }


def test_duplicates_are_counted_within_and_across_ingests(tmp_path, img, params):
    png = img.encode(img.rgb(1))
    img.write_files(
        tmp_path / "a" / "cat",
        {"x.png": png, "copy of x.png": png, "y.png": img.encode(img.rgb(2))},
    )
    first = run(tmp_path, tmp_path / "a", params)
    assert (first.accepted, first.duplicates) == (2, 1)
    img.write_files(
        tmp_path / "b" / "dog",
        {"x.bmp": img.encode(img.rgb(1), "BMP"), "z.png": img.encode(img.rgb(3))},
    )
    second = run(tmp_path, tmp_path / "b", params)
    assert (second.accepted, second.duplicates) == (1, 1)
    assert any("another label" in w for w in second.warnings)
    assert len(read_manifest(tmp_path / "ds")) == 3


def test_imagefolder_labels_and_empty_class_warning(tmp_path, img, params):
    src = tmp_path / "src"
    img.write_files(src / "T-shirt%2Ftop", {"a.png": img.encode(img.rgb(1))})
    img.write_files(src / "Bag" / "nested", {"b.jpg": img.encode(img.rgb(2), "JPEG")})
    (src / "Coat").mkdir()
    result = run(tmp_path, src, params, split="train")
    assert result.accepted == 2 and any("'Coat' is empty" in w for w in result.warnings)
    manifest = read_manifest(tmp_path / "ds")
    assert sorted(manifest["label"]) == ["Bag", "T-shirt/top"] and set(manifest["split"]) == {
        "train"
    }
    loaded = load_imageset(tmp_path / "ds", manifest, {"T-shirt/top": 0, "Bag": 1})
    assert loaded.images.shape == (2, 3, 16, 16)


def test_flat_folder_is_unlabelled(tmp_path, img, params):
    img.write_files(tmp_path / "prod", {f"{i}.png": img.encode(img.rgb(i)) for i in range(3)})
    result = run(tmp_path, tmp_path / "prod", params, source="prod-batch-1")
    assert result.accepted == 3
    manifest = read_manifest(tmp_path / "ds")
    assert manifest["label"].isna().all() and set(manifest["source"]) == {"prod-batch-1"}


def test_odd_file_names_hidden_files_and_outside_symlinks(tmp_path, img, params):
    src, outside = tmp_path / "src", tmp_path / "outside"
    names = ["with space.png", "ünïcødé 猫.png", "new\nline.png"]
    img.write_files(src / "cls", {n: img.encode(img.rgb(i)) for i, n in enumerate(names)})
    img.write_files(
        src / "cls", {".DS_Store": b"\0\0\0\1Bud1", ".hidden.png": img.encode(img.rgb(9))}
    )
    img.write_files(outside, {"secret.png": img.encode(img.rgb(99))})
    os.symlink(outside / "secret.png", src / "cls" / "link.png")
    os.symlink(outside, src / "cls" / "linkdir")
    os.symlink(
        src / "cls" / "with space.png", src / "cls" / "zz-inside-link.png"
    )  # sorted after its target
    result = run(tmp_path, src, params)
    assert result.accepted == 3 and result.duplicates == 1  # the inside link is a duplicate
    assert result.quarantined == {"symlink_outside_source": 2}
    assert sorted(read_manifest(tmp_path / "ds")["path"]) == sorted(f"cls/{n}" for n in names)
    assert not any(p.read_bytes() == img.encode(img.rgb(99)) for p in (tmp_path / "q").iterdir())


def test_nothing_is_written_outside_dataset_and_quarantine(tmp_path, img, params):
    img.write_files(tmp_path / "src" / "a", {"ok.png": img.encode(img.rgb(1)), "bad.png": b"junk"})
    before = snapshot(tmp_path)
    run(tmp_path, tmp_path / "src", params)
    changed = {k for k in set(snapshot(tmp_path)) ^ set(before)}
    assert changed and all(k.split(os.sep)[0] in ("ds", "q") for k in changed)


def test_idx_folder_ingests_both_splits_with_class_names(tmp_path, img, params):
    rng = np.random.default_rng(0)
    img.write_idx(
        tmp_path / "idx",
        "train",
        rng.integers(0, 256, (6, 28, 28), dtype=np.uint8),
        np.array([0, 1, 2, 3, 4, 9]),
    )
    img.write_idx(
        tmp_path / "idx",
        "t10k",
        rng.integers(0, 256, (2, 28, 28), dtype=np.uint8),
        np.array([5, 8]),
        gz=False,
    )
    result = run(tmp_path, tmp_path / "idx", params)
    assert result.accepted == 8 and not result.quarantined
    manifest = read_manifest(tmp_path / "ds")
    assert manifest.groupby("split").size().to_dict() == {"test": 2, "train": 6}
    assert manifest["label"].tolist()[:2] == [FASHION_CLASSES[0], FASHION_CLASSES[1]]
    again = run(tmp_path, tmp_path / "idx", params, split="test")
    assert (again.accepted, again.duplicates, again.total) == (0, 2, 2)


def test_labelled_true_without_class_folders_says_what_to_do(tmp_path, img, params):
    img.write_files(tmp_path / "flat", {"a.png": img.encode(img.rgb(1))})
    with pytest.raises(ValueError, match="labelled=False"):
        run(tmp_path, tmp_path / "flat", params, labelled=True)


def test_scan_folder_returns_images_at_their_own_sizes_meta_and_quarantine_counts(
    tmp_path, img, params
):
    img.write_files(
        tmp_path / "batch",
        {
            "a.png": img.encode(img.rgb(1)),
            "b.jpg": img.encode(img.rgb(2, 32), "JPEG"),
            "c.png": b"",
        },
    )
    images, meta, quarantined = scan_folder(tmp_path / "batch", params, tmp_path / "q")
    assert [tuple(x.shape) for x in images.images] == [(3, 16, 16), (3, 32, 32)]
    assert [Path(p).name for p in meta["path"]] == ["a.png", "b.jpg"]
    assert meta["sha256"].tolist() == list(images.ids)
    assert meta["width"].tolist() == [16, 32] and quarantined == {"empty_file": 1}


def test_scan_folder_follows_file_links_made_for_scoring(tmp_path, img, params):
    img.write_files(tmp_path / "elsewhere", {"photo.png": img.encode(img.rgb(5))})
    (tmp_path / "links").mkdir()
    os.symlink(tmp_path / "elsewhere" / "photo.png", tmp_path / "links" / "000000-photo.png")
    images, meta, quarantined = scan_folder(tmp_path / "links", params, tmp_path / "q")
    assert len(images) == 1 and quarantined == {}
    assert Path(meta["path"][0]).name == "000000-photo.png"
