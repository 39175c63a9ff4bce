"""Bring images from outside into a dataset folder, quarantining every file that is not usable.

Three source layouts: an ImageFolder tree `SRC/<class>/*` (label = folder name, %-decoded so a
label may contain '/'), a flat folder of unlabelled images (production data, label None), and a
folder holding IDX files (Fashion-MNIST; split from the file names). A bad file never stops an
ingest: it is copied to the quarantine with its reason and the rest carries on. Nothing is
written outside `dataset_dir` and `quarantine_dir`; the source is only read. An archive
(.zip/.tar.gz, see `xferlib.data.archive`) is checked member by member and extracted into a
temporary folder inside the work directory first; unsafe members are quarantined.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import numpy as np
import pandas as pd
from PIL import Image

from xferlib.atomic import atomic_write_bytes, sha256_bytes
from xferlib.config import DataParams
from xferlib.data.archive import extract, is_archive
from xferlib.data.fashion import FASHION_CLASSES, idx_pairs, is_idx_source, read_idx
from xferlib.data.imageset import ImageList
from xferlib.data.shards import DatasetWriter, decode_png, to_chw
from xferlib.data.validate import Accepted, Rejected, normalise, validate_image
from xferlib.progress import bar

QUARANTINE_LOG = "quarantine.jsonl"


@dataclass(frozen=True)
class IngestResult:
    """What one ingest did; `total` = accepted + duplicates + all quarantined files."""

    accepted: int
    duplicates: int
    quarantined: dict[str, int]
    total: int
    dataset_dir: str
    warnings: tuple[str, ...] = ()
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"warnings": list(self.warnings)}


@dataclass
class _Quarantine:
    """Copies rejected files to `dir/<sha256 of raw bytes>` and logs one JSON line per file."""

    dir: Path
    source: str
    counts: Counter[str] = field(default_factory=Counter)
    # (temporary extraction folder, archive path): logged paths name the archive, not the temp dir
    rename: tuple[str, str] = ("", "")

    def add(self, path: Path, data: bytes | None, rejected: Rejected) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        sha = sha256_bytes(data) if data is not None else None
        if data is not None and sha is not None and not (self.dir / sha).exists():
            atomic_write_bytes(self.dir / sha, data)
        shown = os.fsdecode(path)
        if self.rename[0] and shown.startswith(self.rename[0]):
            shown = self.rename[1] + shown[len(self.rename[0]) :]
        record = {"sha256": sha, "path": shown, "reason": rejected.reason}
        record |= {
            "detail": rejected.detail,
            "time": datetime.now(UTC).isoformat(),
            "source": self.source,
        }
        with (self.dir / QUARANTINE_LOG).open("a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")  # ensure_ascii: odd file names stay one line
        self.counts[rejected.reason] += 1


@dataclass(frozen=True)
class _Item:
    path: Path
    label: str | None


def ingest(
    src: Path,
    dataset_dir: Path,
    quarantine_dir: Path,
    params: DataParams,
    *,
    source: str,
    split: str | None = None,
    labelled: bool | None = None,
    tmp_dir: Path | None = None,
) -> IngestResult:
    """Validate every file under `src` and append the new, valid images to `dataset_dir`.

    `labelled` None detects the layout (sub-folders = ImageFolder); IDX folders are detected
    first. For IDX sources `split` selects one split ("train"/"test"), else both are ingested.
    An archive `src` is extracted into a temporary folder under `tmp_dir` (default: the parent
    of `quarantine_dir`, i.e. the work directory) and removed afterwards.
    """
    start = time.perf_counter()
    src = Path(src)
    quarantine = _Quarantine(Path(quarantine_dir), source)
    warnings: list[str] = []
    args = (Path(dataset_dir), quarantine, params, source, split, labelled, warnings)
    if is_archive(src):
        stats = _ingest_archive(src, Path(tmp_dir or Path(quarantine_dir).parent), *args)
    elif src.is_dir():
        stats = _ingest_tree(src, *args)
    else:
        raise FileNotFoundError(
            f"ingest source {src} is not a folder or archive; pass an image/IDX folder, .zip or .tar.gz"
        )
    added, dups, conflicts = stats
    if conflicts:
        warnings.append(f"{conflicts} duplicates had another label than the stored copy (kept)")
    counts, seconds = dict(quarantine.counts), round(time.perf_counter() - start, 3)
    total = added + dups + sum(counts.values())
    return IngestResult(added, dups, counts, total, str(dataset_dir), tuple(warnings), seconds)


def _ingest_tree(
    src: Path,
    dataset_dir: Path,
    quarantine: _Quarantine,
    params: DataParams,
    source: str,
    split: str | None,
    labelled: bool | None,
    warnings: list[str],
) -> tuple[int, int, int]:
    with DatasetWriter(dataset_dir, params) as writer:
        if labelled is not False and is_idx_source(src):
            return _ingest_idx(src, writer, quarantine, params, source, split)
        items = _layout(src, labelled, (dataset_dir, quarantine.dir), warnings)
        return _ingest_files(src, items, writer, quarantine, params, source, split)


def _ingest_archive(archive: Path, tmp_dir: Path, *args: Any) -> tuple[int, int, int]:
    """Extract the safe members into a temp folder under tmp_dir, quarantine the rest, ingest."""
    quarantine: _Quarantine = args[1]
    tmp_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".xfer-extract-", dir=tmp_dir) as tmp:
        root = Path(tmp).resolve()
        for member in extract(archive, root, _max_file_bytes(args[2])):
            assert member.rejected is not None
            quarantine.add(Path(f"{archive}!/{member.name}"), member.data, member.rejected)
        quarantine.rename = (str(root), f"{archive}!")
        try:
            return _ingest_tree(_archive_root(root), *args)
        finally:
            quarantine.rename = ("", "")


def _archive_root(root: Path) -> Path:
    """Step into a single top folder (`tar czf data.tgz data/`) when it holds the class folders."""
    entries = [p for p in root.iterdir() if not p.name.startswith(".")]
    if len(entries) == 1 and entries[0].is_dir() and any(p.is_dir() for p in entries[0].iterdir()):
        return entries[0]
    return root


def scan_folder(
    src: Path,
    params: DataParams,
    quarantine_dir: Path,
    *,
    source: str = "score",
) -> tuple[ImageList, pd.DataFrame, dict[str, int]]:
    """Validate loose images (every file under `src`) for scoring, without storing a dataset.

    Returns the valid images at their own sizes (ids = sha256; the model's `Preprocess` resizes
    each once, so an image scores the same whatever else is in the folder), their `meta` (path,
    sha256, width, height) in the same order, and the quarantined counts by reason. Duplicates
    are kept: each path is scored.
    """
    quarantine = _Quarantine(Path(quarantine_dir), source)
    src = Path(src)
    arrays, meta = [], []
    for path in _walk(src, {Path(quarantine_dir).resolve()}):
        # Scoring stores nothing, so file links leading outside src (as `xfer score FILES` makes)
        # are followed here; ingest quarantines them instead.
        data, result = _read_and_validate(path, src, params, follow_files=True)
        if isinstance(result, Rejected):
            quarantine.add(path, data, result)
        elif result is not None:
            arrays.append(to_chw(decode_png(result.png)))
            meta.append((os.fsdecode(path), result.sha256, result.width, result.height))
    images = ImageList(tuple(arrays), tuple(m[1] for m in meta))
    columns = ["path", "sha256", "width", "height"]
    return images, pd.DataFrame(meta, columns=columns), dict(quarantine.counts)


def _layout(
    src: Path, labelled: bool | None, outputs: tuple[Path, ...], warnings: list[str]
) -> Iterator[_Item]:
    skip = {p.resolve() for p in outputs}
    classes = [
        d
        for d in sorted(src.iterdir())
        if d.is_dir() and not d.name.startswith(".") and d.resolve() not in skip
    ]
    if labelled is None:
        labelled = bool(classes)
    if not labelled:
        return (_Item(p, None) for p in _walk(src, skip))
    if not classes:
        raise ValueError(f"{src} has no class folders; pass labelled=False to ingest a flat folder")
    loose = [p for p in src.iterdir() if not p.name.startswith(".") and not p.is_dir()]
    if loose:
        warnings.append(
            f"{len(loose)} files directly in {src} have no class folder and were skipped"
        )
    return _class_items(src, classes, skip, warnings)


def _class_items(
    src: Path, classes: list[Path], skip: set[Path], warnings: list[str]
) -> Iterator[_Item]:
    for folder in classes:
        if folder.is_symlink():
            yield _Item(folder, None)  # checked (and quarantined if it leaves src) by the reader
            continue
        count = 0
        for path in _walk(folder, skip):
            count += 1
            yield _Item(path, unquote(folder.name))
        if count == 0:
            warnings.append(f"class folder {folder.name!r} is empty")


def _walk(root: Path, skip: set[Path]) -> Iterator[Path]:
    """Every non-hidden file under root, sorted; symlinked folders are yielded, not entered."""
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        here = Path(dirpath)
        keep = [
            n
            for n in sorted(dirnames)
            if not n.startswith(".") and (here / n).resolve() not in skip
        ]
        yield from (here / n for n in keep if (here / n).is_symlink())
        dirnames[:] = [n for n in keep if not (here / n).is_symlink()]
        yield from (here / n for n in sorted(filenames) if not n.startswith("."))


def _read_and_validate(
    path: Path, src: Path, params: DataParams, follow_files: bool = False
) -> tuple[bytes | None, Accepted | Rejected | None]:
    """(raw bytes, verdict); verdict None means "not a file to ingest" (an in-source folder link)."""
    if path.is_symlink():
        target = path.resolve()
        outside = not target.is_relative_to(src.resolve())
        if outside and not (follow_files and target.is_file()):
            detail = f"points to {os.fsdecode(target)}, outside {src}"
            return os.fsencode(os.readlink(path)), Rejected("symlink_outside_source", detail)
        if target.is_dir():
            return None, None  # its files are already under src
    try:
        if path.stat().st_size > _max_file_bytes(params):
            detail = f"{path.stat().st_size} bytes is larger than any image within data.max_pixels"
            return None, Rejected("too_large", detail)
        data = path.read_bytes()
    except OSError as exc:
        return None, Rejected("unreadable", f"{type(exc).__name__}: {exc.strerror or exc}")
    return data, validate_image(data, params)


def _max_file_bytes(params: DataParams) -> int:
    # 8 bytes per pixel covers uncompressed 16-bit RGBA (TIFF/BMP); + headroom for metadata.
    return params.max_pixels * 8 + (16 << 20)


def _ingest_files(
    src: Path,
    items: Iterator[_Item],
    writer: DatasetWriter,
    quarantine: _Quarantine,
    params: DataParams,
    source: str,
    split: str | None,
) -> tuple[int, int, int]:
    added = dups = conflicts = 0
    for item in bar(items, "ingest", unit="img"):
        data, result = _read_and_validate(item.path, src, params)
        if isinstance(result, Rejected):
            quarantine.add(item.path, data, result)
        elif result is not None:
            rel = item.path.relative_to(src).as_posix()
            ok = writer.add(result, label=item.label, split=split, source=source, path=rel)
            added, dups = added + ok, dups + (not ok)
            conflicts += (not ok) and writer.stored_label(result.sha256) != item.label
    return added, dups, conflicts


def _ingest_idx(
    src: Path,
    writer: DatasetWriter,
    quarantine: _Quarantine,
    params: DataParams,
    source: str,
    split: str | None,
) -> tuple[int, int, int]:
    added = dups = conflicts = 0
    for idx_split, images_file, labels_file in idx_pairs(src):
        if split is not None and split != idx_split:
            continue
        images, labels = read_idx(images_file), read_idx(labels_file)
        if images.shape[0] != labels.shape[0] or int(labels.max(initial=0)) >= len(FASHION_CLASSES):
            raise ValueError(
                f"{images_file} / {labels_file} do not pair up as Fashion-MNIST (shapes {images.shape}, {labels.shape})"
            )
        rows = bar(zip(images, labels, strict=True), f"ingest {idx_split}", len(labels), "img")
        for i, (pixels, y) in enumerate(rows):
            img = Image.fromarray(np.ascontiguousarray(pixels, dtype=np.uint8))
            result, name = normalise(img, params, "IDX"), f"{images_file.name}#{i}"
            if isinstance(result, Rejected):
                quarantine.add(src / name, pixels.tobytes(), result)
                continue
            label = FASHION_CLASSES[int(y)]
            ok = writer.add(result, label=label, split=idx_split, source=source, path=name)
            added, dups = added + ok, dups + (not ok)
            conflicts += (not ok) and writer.stored_label(result.sha256) != label
    return added, dups, conflicts
