"""A dataset folder: content-addressed shards of PNG bytes plus one `manifest.parquet`.

DVC is slow on tens of thousands of small files, so images are concatenated into shards of up
to `data.shard_size` images. A shard is named by the sha256 of its bytes and never changes once
written; appending images adds new shards and rewrites only the manifest. Shards and manifest are
written to a temporary file and renamed, so a crash leaves the previous dataset readable.
"""

from __future__ import annotations

import fcntl
import io
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from PIL import Image

from xferlib.atomic import atomic_write_bytes, sha256_bytes
from xferlib.config import DataParams
from xferlib.data.imageset import ImageSet, resize_uint8
from xferlib.data.validate import Accepted

MANIFEST = "manifest.parquet"
SHARDS = "shards"
SCHEMA = pa.schema(
    [
        ("sha256", pa.string()),
        ("label", pa.string()),
        ("split", pa.string()),
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("source", pa.string()),
        ("path", pa.string()),
        ("shard", pa.string()),
        ("offset", pa.int64()),
        ("length", pa.int64()),
    ]
)
COLUMNS = SCHEMA.names


@dataclass(frozen=True)
class _Pending:
    png: bytes
    row: dict[str, Any]


class DatasetWriter:
    """Append accepted images to a dataset folder, skipping images (sha256) already stored.

    Use as a context manager: the manifest is rewritten once, on a clean exit, so an ingest that
    fails half-way leaves the previous manifest in place (its new shards are then unreferenced).
    """

    def __init__(self, dataset_dir: Path | str, params: DataParams) -> None:
        self.dir = Path(dataset_dir)
        self.shard_size = params.shard_size
        # One writer per dataset at a time (two ingests would each rewrite the manifest). The lock
        # is on the folder itself, so no lock file ends up in the DVC-tracked dataset.
        self.dir.mkdir(parents=True, exist_ok=True)
        self._lock: int | None = os.open(self.dir, os.O_RDONLY)
        fcntl.flock(self._lock, fcntl.LOCK_EX)
        self._old = read_manifest(self.dir) if (self.dir / MANIFEST).exists() else _empty()
        self._labels: dict[str, str | None] = dict(
            zip(self._old["sha256"], self._old["label"], strict=True)
        )
        self._pending: list[_Pending] = []
        self._rows: list[dict[str, Any]] = []

    def __contains__(self, sha256: str) -> bool:
        return sha256 in self._labels

    def stored_label(self, sha256: str) -> str | None:
        """The label of an image already in the dataset (or added by this writer)."""
        return self._labels[sha256]

    def add(
        self, image: Accepted, *, label: str | None, split: str | None, source: str, path: str
    ) -> bool:
        """Queue one image; False (and nothing stored) if its sha256 is already in the dataset."""
        if image.sha256 in self._labels:
            return False
        self._labels[image.sha256] = label
        row = {"sha256": image.sha256, "label": label, "split": split, "width": image.width}
        row |= {"height": image.height, "source": source, "path": _printable(path)}
        self._pending.append(_Pending(image.png, row))
        if len(self._pending) >= self.shard_size:
            self._flush_shard()
        return True

    @property
    def added(self) -> int:
        return len(self._rows) + len(self._pending)

    def close(self) -> pd.DataFrame:
        """Write the last shard and the manifest (old rows + new rows); returns the manifest."""
        try:
            self._flush_shard()
            if not self._rows:  # nothing new: leave the dataset (or its absence) as it was
                return self._old
            new = pd.DataFrame(self._rows, columns=COLUMNS)
            manifest = pd.concat([self._old, new], ignore_index=True) if len(self._old) else new
            table = pa.Table.from_pandas(manifest, schema=SCHEMA, preserve_index=False)
            buf = pa.BufferOutputStream()
            pq.write_table(table, buf)
            atomic_write_bytes(self.dir / MANIFEST, buf.getvalue().to_pybytes())
            return manifest
        finally:
            self._unlock()

    def __enter__(self) -> DatasetWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self._unlock()

    def _unlock(self) -> None:
        if self._lock is not None:
            os.close(self._lock)  # closing the descriptor releases the flock
            self._lock = None

    def _flush_shard(self) -> None:
        if not self._pending:
            return
        blob = b"".join(p.png for p in self._pending)
        name = sha256_bytes(blob)
        (self.dir / SHARDS).mkdir(parents=True, exist_ok=True)
        target = self.dir / SHARDS / f"{name}.bin"
        if not target.exists():  # content-addressed: an existing shard already holds these bytes
            atomic_write_bytes(target, blob)
        offset = 0
        for p in self._pending:
            self._rows.append(p.row | {"shard": name, "offset": offset, "length": len(p.png)})
            offset += len(p.png)
        self._pending = []


def read_manifest(dataset_dir: Path | str) -> pd.DataFrame:
    """The dataset's manifest, one row per stored image (columns: see `COLUMNS`)."""
    path = Path(dataset_dir) / MANIFEST
    if not path.exists():
        raise FileNotFoundError(f"no {MANIFEST} in {dataset_dir}; run `xfer ingest SRC` first")
    return pq.read_table(path).to_pandas()


def shard_path(dataset_dir: Path | str, shard: str) -> Path:
    return Path(dataset_dir) / SHARDS / f"{shard}.bin"


def read_image_bytes(dataset_dir: Path | str, row: Any) -> bytes:
    """The stored PNG bytes of one manifest row, checked against its sha256."""
    with shard_path(dataset_dir, row["shard"]).open("rb") as f:
        f.seek(int(row["offset"]))
        data = f.read(int(row["length"]))
    if sha256_bytes(data) != row["sha256"]:
        raise OSError(
            f"image {row['sha256']} in shard {row['shard']} is corrupt; re-run `dvc pull`"
        )
    return data


def load_imageset(
    dataset_dir: Path | str,
    rows: pd.DataFrame,
    label_map: dict[str, int] | None = None,
    size: int | None = None,
) -> ImageSet:
    """Decode manifest `rows` into an ImageSet, in row order, reading each shard file once.

    Images are resized to `size` x `size`, or (size None) to the most common stored size when
    sizes differ. Labels come from `label_map` (None: an unlabelled ImageSet).
    """
    labels = _labels(rows, label_map)
    arrays: list[np.ndarray | None] = [None] * len(rows)
    offsets, lengths = rows["offset"].to_numpy(), rows["length"].to_numpy()
    by_shard = pd.Series(rows["shard"].to_numpy()).groupby(rows["shard"].to_numpy(), sort=False)
    for shard, pos in by_shard.indices.items():
        view = memoryview(shard_path(dataset_dir, str(shard)).read_bytes())
        for i in pos.tolist():
            arrays[i] = decode_png(view[offsets[i] : offsets[i] + lengths[i]])
    images = stack_images(arrays, size)  # type: ignore[arg-type]
    return ImageSet(images, labels, rows["sha256"].astype(str).tolist())


def decode_png(data: bytes | memoryview) -> np.ndarray:
    """PNG bytes -> uint8 array (H, W) or (H, W, 3)."""
    with Image.open(io.BytesIO(data)) as img:
        return np.asarray(img)


def stack_images(arrays: list[np.ndarray], size: int | None = None) -> torch.Tensor:
    """uint8 HxW / HxWx3 arrays -> one uint8 (N, 3, S, S) tensor, resizing where sizes differ."""
    if not arrays:
        side = size or 0
        return torch.empty((0, 3, side, side), dtype=torch.uint8)
    shapes = [a.shape[:2] for a in arrays]
    target = (size, size) if size else Counter(shapes).most_common(1)[0][0]
    out = torch.empty((len(arrays), 3, *target), dtype=torch.uint8)
    groups: dict[tuple[int, int], list[int]] = {}
    for i, a in enumerate(arrays):
        groups.setdefault(a.shape[:2], []).append(i)
    for shape, idx in groups.items():
        batch = torch.from_numpy(np.stack([_hwc3(arrays[i]) for i in idx])).permute(0, 3, 1, 2)
        out[idx] = batch if tuple(shape) == tuple(target) else resize_uint8(batch, tuple(target))
    return out


def to_chw(a: np.ndarray) -> torch.Tensor:
    """One decoded uint8 HxW / HxWx3 array -> uint8 (3, H, W) tensor at its own size."""
    return torch.from_numpy(_hwc3(a).transpose(2, 0, 1).copy())  # a writable copy: PIL's is not


def _hwc3(a: np.ndarray) -> np.ndarray:
    return np.repeat(a[:, :, None], 3, axis=2) if a.ndim == 2 else a


def _labels(rows: pd.DataFrame, label_map: dict[str, int] | None) -> torch.Tensor | None:
    if label_map is None:
        return None
    unknown = sorted({str(v) for v in rows["label"] if v not in label_map})
    if unknown:
        raise ValueError(
            f"labels {unknown[:5]} are not in label_map; valid: {sorted(label_map)[:20]}"
        )
    return torch.tensor([label_map[v] for v in rows["label"]], dtype=torch.int64)


def _empty() -> pd.DataFrame:
    return SCHEMA.empty_table().to_pandas()


def _printable(path: str) -> str:
    """File names that are not valid UTF-8 (surrogate-escaped) cannot go into Parquet as is."""
    return path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
