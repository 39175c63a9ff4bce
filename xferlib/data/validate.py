"""Decide whether raw file bytes are a usable training image, and normalise the ones that are.

Every image that enters a dataset passes through `validate_image`: it is fully decoded (a
truncated file fails here, not in the middle of a training epoch), checked against the size
limits in `DataParams`, converted to the model's mode and re-encoded as PNG. The sha256 of that
PNG is the image's identity: the same pixels arriving as JPEG, as a renamed copy or in a second
ingest de-duplicate to one stored image.
"""

from __future__ import annotations

import io
import warnings
import zlib
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from xferlib.atomic import sha256_bytes
from xferlib.config import DataParams

# The fixed vocabulary of rejection reasons (ingest adds the file-system ones below).
REASONS = (
    "empty_file",
    "not_an_image",
    "truncated",
    "too_small",
    "too_large",
    "animated",
    "unsupported_mode",
)
FILE_REASONS = ("symlink_outside_source", "unreadable", "unsafe_archive_member")

# Source modes we know how to turn into RGB / L; anything else is `unsupported_mode`.
_MODES = {"1", "L", "LA", "La", "P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr"}
_MODES |= {"LAB", "HSV", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"}
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, zlib.error, IndexError)


@dataclass(frozen=True)
class Accepted:
    """A valid image: PNG bytes in the dataset's mode, their sha256 and where they came from."""

    png: bytes
    sha256: str
    width: int
    height: int
    source_mode: str
    source_format: str


@dataclass(frozen=True)
class Rejected:
    """Why a file is not a usable image: `reason` from REASONS/FILE_REASONS, `detail` for humans."""

    reason: str
    detail: str


def validate_image(data: bytes, params: DataParams) -> Accepted | Rejected:
    """Validate and normalise one encoded image; never raises for bad input, returns Rejected."""
    if not data:
        return Rejected("empty_file", "the file has 0 bytes")
    with warnings.catch_warnings():
        # PIL's bomb warning means "bigger than PIL likes"; our own max_pixels check decides.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            img = Image.open(io.BytesIO(data))
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            return Rejected("too_large", str(exc).split(".")[0])
        except UnidentifiedImageError:
            return Rejected("not_an_image", f"not a recognised image format ({_sniff(data)})")
        except _DECODE_ERRORS as exc:
            return Rejected("not_an_image", f"unreadable image header: {exc}")
        return _check_and_load(img, params)


def normalise(img: Image.Image, params: DataParams, source_format: str) -> Accepted | Rejected:
    """Size-check an already decoded image and convert it (used for IDX arrays, no file bytes)."""
    rejected = _check_header(img, params)
    if rejected is not None:
        return rejected
    return _encode(img, params, source_format)


def _check_and_load(img: Image.Image, params: DataParams) -> Accepted | Rejected:
    rejected = _check_header(img, params)
    if rejected is not None:
        return rejected
    fmt = img.format or "unknown"
    try:
        frames = _frame_count(img)
        if frames > 1:
            return Rejected("animated", f"{fmt} with {frames} frames; expected a single image")
        img.load()  # full decode; ImageFile.LOAD_TRUNCATED_IMAGES stays False
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        return Rejected("too_large", str(exc).split(".")[0])
    except _DECODE_ERRORS as exc:
        return Rejected("truncated", f"{fmt} does not fully decode: {exc}")
    try:
        return _encode(img, params, fmt)
    except _DECODE_ERRORS as exc:
        return Rejected("unsupported_mode", f"cannot convert {img.mode} to {params.mode}: {exc}")


def _check_header(img: Image.Image, params: DataParams) -> Rejected | None:
    """Checks that need only the header: size limits and mode, before any pixel is decoded."""
    w, h = img.size
    if w * h > params.max_pixels:
        return Rejected(
            "too_large", f"{w}x{h} = {w * h} pixels > data.max_pixels={params.max_pixels}"
        )
    if min(w, h) < params.min_side:
        return Rejected("too_small", f"{w}x{h}: a side is < data.min_side={params.min_side}")
    if img.mode not in _MODES:
        return Rejected("unsupported_mode", f"mode {img.mode!r}; supported: {sorted(_MODES)}")
    return None


def _frame_count(img: Image.Image) -> int:
    # MPO (camera JPEG with a preview/depth frame) is one photo: keep its primary image.
    if img.format == "MPO" or not getattr(img, "is_animated", False):
        return 1
    return int(getattr(img, "n_frames", 1))


def _encode(img: Image.Image, params: DataParams, fmt: str) -> Accepted:
    source_mode = img.mode
    out = _to_mode(_upright(img), params.mode)
    buf = io.BytesIO()
    # compress_level 1: ~3x faster than the default 6 and only slightly larger for photos.
    # The sha256 is over these bytes, so it is stable for a given Pillow/zlib build.
    out.save(buf, format="PNG", compress_level=1)
    png = buf.getvalue()
    return Accepted(png, sha256_bytes(png), out.width, out.height, source_mode, fmt)


def _upright(img: Image.Image) -> Image.Image:
    """Apply the EXIF orientation (phone photos) so pixels look as the viewer shows them."""
    try:
        return ImageOps.exif_transpose(img) or img
    except Exception:  # a broken EXIF block must not reject otherwise good pixels
        return img


def _to_mode(img: Image.Image, mode: str) -> Image.Image:
    if img.mode.startswith("I;16") or img.mode in ("I", "F"):
        img = Image.fromarray(_to_uint8(np.asarray(img), sixteen_bit=img.mode.startswith("I;16")))
    elif img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    elif img.mode in ("RGBa", "La", "PA"):
        img = img.convert("LA" if img.mode == "La" else "RGBA")
    if img.mode in ("RGBA", "LA"):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, rgba).convert("RGB")
    return img if img.mode == mode else img.convert(mode)


def _to_uint8(a: np.ndarray, sixteen_bit: bool) -> np.ndarray:
    """Scale 16-bit / 32-bit / float pixels to 0..255 (PIL's own convert clips at 255 instead).

    16-bit images have a declared range (0..65535 -> 0..255). Modes I and F do not: float data
    in [0, 1] is scaled by 255, data already in 0..255 is kept, 0..65535 is treated as 16-bit and
    anything else is stretched from its min..max.
    """
    x = a.astype(np.float64)
    lo, hi = (float(x.min()), float(x.max())) if x.size else (0.0, 0.0)
    if sixteen_bit or (lo >= 0 and 255 < hi <= 65535):
        scaled = x / 257.0  # 65535 -> 255 exactly
    elif a.dtype.kind == "f" and lo >= 0 and hi <= 1.0:
        scaled = x * 255.0
    elif lo >= 0 and hi <= 255:
        scaled = x
    else:
        scaled = (x - lo) / max(hi - lo, 1e-12) * 255.0
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def _sniff(data: bytes) -> str:
    head = data[:64].lstrip().lower()
    if head.startswith((b"<!doctype html", b"<html")):
        return "looks like HTML"
    if head.startswith(b"{") or head.startswith(b"["):
        return "looks like JSON"
    return f"starts with {data[:8]!r}"
