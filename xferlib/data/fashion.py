"""Fashion-MNIST from its IDX files (Debian's `dataset-fashion-mnist`), and PNG export for demos.

IDX is the MNIST family's format: 2 zero bytes, a dtype code, the number of dimensions, then one
big-endian uint32 per dimension and the raw big-endian data. Files may be gzip-compressed.
"""

from __future__ import annotations

import gzip
import struct
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import quote

import numpy as np
from PIL import Image

FASHION_ROOT = "/usr/share/datasets/fashion-mnist"
FASHION_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
# file-name prefix -> split
IDX_SPLITS = {"train": "train", "t10k": "test"}
_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_INSTALL_HINT = "install it with `apt-get install dataset-fashion-mnist` or pass root="


def read_idx(path: Path | str, limit: int | None = None) -> np.ndarray:
    """Read an IDX file (gzip or raw) into a native-endian array; `limit` reads only the first N."""
    path = Path(path)
    with path.open("rb") as raw:
        gz = raw.read(2) == b"\x1f\x8b"
    opener = gzip.open if gz else open
    with opener(path, "rb") as f:  # type: ignore[operator]
        head = f.read(4)
        if len(head) < 4 or head[:2] != b"\0\0" or head[2] not in _DTYPES:
            raise ValueError(
                f"{path} is not an IDX file (header {head!r}); expected 00 00 <dtype> <ndim>"
            )
        ndim = head[3]
        shape = struct.unpack(f">{ndim}I", f.read(4 * ndim))
        if limit is not None and ndim:
            shape = (min(limit, shape[0]), *shape[1:])
        dtype = np.dtype(_DTYPES[head[2]])
        count = int(np.prod(shape)) if ndim else 1
        data = f.read(count * dtype.itemsize)
    if len(data) != count * dtype.itemsize:
        raise ValueError(f"{path} is truncated: {len(data)} of {count * dtype.itemsize} data bytes")
    return np.frombuffer(data, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))


def idx_pairs(path: Path | str) -> list[tuple[str, Path, Path]]:
    """(split, images file, labels file) for every IDX image/label pair in a folder."""
    folder = Path(path)
    pairs = []
    for prefix, split in IDX_SPLITS.items():
        images = _find(folder, f"{prefix}-images-idx3-ubyte")
        labels = _find(folder, f"{prefix}-labels-idx1-ubyte")
        if images is not None and labels is not None:
            pairs.append((split, images, labels))
    return pairs


def is_idx_source(path: Path | str) -> bool:
    """True if `path` is a folder holding at least one IDX images + labels pair."""
    return Path(path).is_dir() and bool(idx_pairs(path))


def load_fashion_mnist(
    root: Path | str = FASHION_ROOT, split: str = "train", limit: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Images uint8 (N, 28, 28) and int64 labels of one split ("train" 60k or "test" 10k)."""
    prefixes = {v: k for k, v in IDX_SPLITS.items()}
    if split not in prefixes:
        raise ValueError(f"split={split!r} is not a Fashion-MNIST split; valid: 'train', 'test'")
    prefix = prefixes[split]
    images = _find(Path(root), f"{prefix}-images-idx3-ubyte")
    labels = _find(Path(root), f"{prefix}-labels-idx1-ubyte")
    if images is None or labels is None:
        raise FileNotFoundError(f"Fashion-MNIST {split} files not found in {root}; {_INSTALL_HINT}")
    x, y = read_idx(images, limit), read_idx(labels, limit)
    if x.ndim != 3 or x.shape[0] != y.shape[0]:
        raise ValueError(f"{images} and {labels} disagree: images {x.shape}, labels {y.shape}")
    return x.astype(np.uint8), y.astype(np.int64)


def class_dirname(name: str) -> str:
    """Folder name for a class; '/' (as in 'T-shirt/top') is %-encoded and ingest decodes it."""
    return quote(name, safe=" ")


def export_imagefolder(
    images: np.ndarray,
    labels: np.ndarray | Sequence[int],
    class_names: Sequence[str],
    out_dir: Path | str,
    prefix: str = "img",
) -> list[Path]:
    """Write `out_dir/<class>/<prefix>_<i>.png` for each image (uint8 HxW, HxWx3 or 3xHxW)."""
    out = Path(out_dir)
    written = []
    for i, (img, label) in enumerate(zip(images, labels, strict=True)):
        folder = out / class_dirname(class_names[int(label)])
        folder.mkdir(parents=True, exist_ok=True)
        arr = np.asarray(img)
        if arr.ndim == 3 and arr.shape[0] in (1, 3) and arr.shape[-1] not in (1, 3):
            arr = arr.transpose(1, 2, 0)  # CHW -> HWC
        path = folder / f"{prefix}_{i:06d}.png"
        Image.fromarray(arr.squeeze().astype(np.uint8)).save(path, compress_level=1)
        written.append(path)
    return written


def _find(folder: Path, stem: str) -> Path | None:
    for name in (f"{stem}.gz", stem):
        if (folder / name).is_file():
            return folder / name
    return None
