"""A corpus of bad (and a few good but unusual) image files, with the verdict each must get."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

# file name -> quarantine reason, or None for "accepted" (converted to RGB)
EXPECTED: dict[str, str | None] = {
    "truncated.jpg": "truncated",
    "zero.png": "empty_file",
    "page.jpg": "not_an_image",
    "one.png": "too_small",
    "bomb.png": "too_large",
    "anim.gif": "animated",
    "sixteen.png": None,
    "cmyk.jpg": None,
    "good one.png": None,
    "ünïcødé 画像.png": None,
    "new\nline.png": None,
}


def _rgb(rng: np.random.Generator, side: int) -> Image.Image:
    return Image.fromarray(rng.integers(0, 255, (side, side, 3), dtype=np.uint8))


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bomb_png() -> bytes:
    """A 200-byte PNG whose header claims 50,000 x 50,000 pixels."""
    ihdr = struct.pack(">IIBBBBB", 50_000, 50_000, 8, 2, 0, 0, 0)
    body = _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", zlib.compress(b"\0" * 64))
    return b"\x89PNG\r\n\x1a\n" + body + _png_chunk(b"IEND", b"")


def write_corpus(folder: Path, seed: int = 0) -> dict[str, str | None]:
    """Write every EXPECTED file into folder; returns EXPECTED."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    _rgb(rng, 64).save(buf, "JPEG")
    (folder / "truncated.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    (folder / "zero.png").write_bytes(b"")
    (folder / "page.jpg").write_text("<!DOCTYPE html><html><body>404 Not Found</body></html>")
    _rgb(rng, 1).save(folder / "one.png")
    (folder / "bomb.png").write_bytes(bomb_png())
    frames = [_rgb(rng, 32) for _ in range(3)]
    frames[0].save(folder / "anim.gif", save_all=True, append_images=frames[1:], duration=50)
    sixteen = Image.fromarray(rng.integers(0, 65535, (32, 32)).astype(np.uint16))
    assert sixteen.mode.startswith("I;16")
    sixteen.save(folder / "sixteen.png")
    _rgb(rng, 32).convert("CMYK").save(folder / "cmyk.jpg")
    for name in ("good one.png", "ünïcødé 画像.png", "new\nline.png"):
        _rgb(rng, 28).save(folder / name)
    return EXPECTED


def bad_counts() -> dict[str, int]:
    out: dict[str, int] = {}
    for reason in EXPECTED.values():
        if reason is not None:
            out[reason] = out.get(reason, 0) + 1
    return out


def good_names() -> list[str]:
    return [name for name, reason in EXPECTED.items() if reason is None]
