"""Real image files of every kind the data layer must accept or quarantine, made in tmp dirs."""

from __future__ import annotations

import gzip
import io
import struct
import zlib
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from xferlib.config import DataParams


def encode(img: Image.Image, fmt: str = "PNG", **kw: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def rgb(seed: int, size: int = 16) -> Image.Image:
    """A distinct random RGB image per seed."""
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8))


def png_header_only(width: int, height: int) -> bytes:
    """A PNG signature + IHDR claiming width x height, with a tiny IDAT: no pixel data to speak of."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def animated_gif(frames: int = 3) -> bytes:
    imgs = [Image.new("RGB", (16, 16), (60 * i, 0, 0)) for i in range(frames)]
    return encode(imgs[0], "GIF", save_all=True, append_images=imgs[1:])


def bad_files() -> dict[str, tuple[bytes, str]]:
    """file name -> (bytes, expected quarantine reason)."""
    good_png, good_jpg = encode(rgb(100)), encode(rgb(101), "JPEG", quality=90)
    return {
        "truncated.png": (good_png[: len(good_png) // 2], "truncated"),
        "truncated.jpg": (good_jpg[: len(good_jpg) // 2], "truncated"),
        "zero.png": (b"", "empty_file"),
        "page.jpg": (b"<!DOCTYPE html><html><body>404 not found</body></html>", "not_an_image"),
        "pixel.png": (encode(Image.new("RGB", (1, 1))), "too_small"),
        "bomb.png": (png_header_only(50_000, 50_000), "too_large"),
        "anim.gif": (animated_gif(), "animated"),
    }


def good_files() -> dict[str, bytes]:
    """file name -> bytes of an image that must be accepted (odd modes included)."""
    sixteen = Image.fromarray(np.arange(16 * 16, dtype=np.uint16).reshape(16, 16) * 257)
    rgba = Image.fromarray(np.full((16, 16, 4), (10, 200, 30, 0), dtype=np.uint8))
    return {
        "plain.png": encode(rgb(1)),
        "photo.jpg": encode(rgb(2), "JPEG", quality=95),
        "gray16.png": encode(sixteen),
        "cmyk.jpg": encode(rgb(3).convert("CMYK"), "JPEG"),
        "alpha.png": encode(rgba),
        "palette.png": encode(rgb(4).convert("P")),
    }


def write_files(folder: Path, files: dict[str, bytes]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)


def idx_bytes(array: np.ndarray) -> bytes:
    """The real IDX layout: 00 00, dtype 0x08 (uint8), ndim, big-endian uint32 sizes, data."""
    head = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return head + array.astype(np.uint8).tobytes()


def write_idx(
    folder: Path, prefix: str, images: np.ndarray, labels: np.ndarray, gz: bool = True
) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for kind, arr in (("images-idx3", images), ("labels-idx1", labels)):
        name = f"{prefix}-{kind}-ubyte"
        if gz:
            (folder / f"{name}.gz").write_bytes(gzip.compress(idx_bytes(arr)))
        else:
            (folder / name).write_bytes(idx_bytes(arr))


@pytest.fixture
def params() -> DataParams:
    return DataParams(shard_size=4)


@pytest.fixture
def img() -> SimpleNamespace:
    """The helpers above, for tests (conftest modules are not imported directly)."""
    return SimpleNamespace(
        encode=encode,
        rgb=rgb,
        png_header_only=png_header_only,
        animated_gif=animated_gif,
        bad_files=bad_files,
        good_files=good_files,
        write_files=write_files,
        idx_bytes=idx_bytes,
        write_idx=write_idx,
    )
