"""validate_image: each bad kind gets its reason; odd-but-valid modes are normalised to RGB."""

from __future__ import annotations

import hashlib
import io
import time
import tracemalloc

import numpy as np
import pytest
from PIL import Image, ImageFile

from xferlib.config import DataParams
from xferlib.data.validate import REASONS, Accepted, Rejected, validate_image


def decode(acc: Accepted) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(acc.png)))


@pytest.mark.parametrize(
    "name",
    ["truncated.png", "truncated.jpg", "zero.png", "page.jpg", "pixel.png", "bomb.png", "anim.gif"],
)
def test_bad_file_is_rejected_with_its_reason(img, params, name):
    data, reason = img.bad_files()[name]
    result = validate_image(data, params)
    assert isinstance(result, Rejected), name
    assert result.reason == reason and result.reason in REASONS
    assert result.detail and "\n" not in result.detail


@pytest.mark.parametrize(
    "name", ["plain.png", "photo.jpg", "gray16.png", "cmyk.jpg", "alpha.png", "palette.png"]
)
def test_valid_modes_are_accepted_as_rgb_png(img, params, name):
    result = validate_image(img.good_files()[name], params)
    assert isinstance(result, Accepted), result
    pixels = decode(result)
    assert pixels.shape == (16, 16, 3) and pixels.dtype == np.uint8
    assert result.sha256 == hashlib.sha256(result.png).hexdigest()
    assert (result.width, result.height) == (16, 16)


def test_16_bit_gray_is_scaled_not_clipped(img, params):
    result = validate_image(img.good_files()["gray16.png"], params)
    assert isinstance(result, Accepted) and result.source_mode.startswith("I;16")
    gray = decode(result)[..., 0].ravel()
    # source is 0..255 * 257: scaling by 1/257 gives back exactly 0..255 (clipping would give 255s)
    assert np.array_equal(gray, np.arange(256, dtype=np.uint8))


def test_transparent_pixels_are_composited_on_white(img, params):
    result = validate_image(img.good_files()["alpha.png"], params)
    assert isinstance(result, Accepted)
    assert (decode(result) == 255).all()


def test_cmyk_jpeg_keeps_its_colours(img, params):
    src = img.rgb(3)
    result = validate_image(img.encode(src.convert("CMYK"), "JPEG", quality=95), params)
    assert isinstance(result, Accepted) and result.source_mode == "CMYK"
    err = np.abs(decode(result).astype(int) - np.asarray(src).astype(int)).mean()
    assert err < 40  # random noise through JPEG: close to the source, not inverted (err ~ 128)


def test_same_pixels_in_png_and_lossless_formats_share_one_sha256(img, params):
    src = img.rgb(7)
    a = validate_image(img.encode(src), params)
    b = validate_image(img.encode(src, "BMP"), params)
    c = validate_image(img.encode(src.convert("RGBA")), params)
    assert isinstance(a, Accepted) and isinstance(b, Accepted) and isinstance(c, Accepted)
    assert a.sha256 == b.sha256 == c.sha256


def test_huge_png_header_is_rejected_fast_without_allocating(img, params):
    data = img.png_header_only(50_000, 50_000)
    tracemalloc.start()
    start = time.perf_counter()
    result = validate_image(data, params)
    elapsed = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert isinstance(result, Rejected) and result.reason == "too_large"
    assert elapsed < 1.0 and peak < 5_000_000


def test_max_pixels_below_pil_limit_is_checked_before_decoding(img):
    small_limit = DataParams(max_pixels=1_000)
    result = validate_image(img.png_header_only(40, 40), small_limit)
    assert isinstance(result, Rejected) and result.reason == "too_large"
    assert "max_pixels=1000" in result.detail


def test_min_side_applies_to_either_side(img, params):
    wide = Image.new("RGB", (200, 7), (1, 2, 3))
    result = validate_image(img.encode(wide), params)
    assert isinstance(result, Rejected) and result.reason == "too_small"


def test_single_frame_gif_is_accepted(img, params):
    result = validate_image(img.animated_gif(frames=1), params)
    assert isinstance(result, Accepted)


def test_multi_page_tiff_is_rejected_as_animated(img, params):
    pages = [img.rgb(i) for i in range(2)]
    data = img.encode(pages[0], "TIFF", save_all=True, append_images=pages[1:])
    result = validate_image(data, params)
    assert isinstance(result, Rejected) and result.reason == "animated"


def test_gray_mode_dataset_stores_single_channel(img):
    result = validate_image(img.encode(img.rgb(5)), DataParams(mode="L"))
    assert isinstance(result, Accepted) and decode(result).shape == (16, 16)


def test_float_image_in_unit_range_is_scaled(img, params):
    arr = np.linspace(0.0, 1.0, 16 * 16, dtype=np.float32).reshape(16, 16)
    result = validate_image(img.encode(Image.fromarray(arr), "TIFF"), params)
    assert isinstance(result, Accepted) and result.source_mode == "F"
    gray = decode(result)[..., 0]
    assert gray.min() == 0 and gray.max() == 255


def test_validation_leaves_truncated_loading_off(img, params):
    validate_image(img.bad_files()["truncated.png"][0], params)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
