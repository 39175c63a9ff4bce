import numpy as np
import pytest
import torch
from PIL import Image
from scipy import stats

from tests.drift.synthetic import images
from xferlib.data.shifts import (
    IMAGE_SHIFTS,
    LABEL_SHIFTS,
    SHIFT_KINDS,
    apply_shift,
    label_shift,
    shift_folder,
)
from xferlib.drift import image_properties


@pytest.fixture(scope="module")
def batch() -> torch.Tensor:
    return images(48, size=32, seed=3)


def test_catalogue_lists_every_kind_once() -> None:
    assert len(IMAGE_SHIFTS) == 14 and set(LABEL_SHIFTS) == {"class_imbalance", "knockout"}
    assert len(set(SHIFT_KINDS)) == len(SHIFT_KINDS) == 16


@pytest.mark.parametrize("kind", IMAGE_SHIFTS)
def test_severity_is_monotone_in_pixel_distance(kind: str, batch: torch.Tensor) -> None:
    dist = [
        (apply_shift(batch, kind, s, seed=1).float() - batch.float()).abs().mean().item()
        for s in range(1, 6)
    ]
    assert dist[0] > 0.1, f"{kind} severity 1 barely changes the image: {dist}"
    assert all(b > a for a, b in zip(dist, dist[1:], strict=False)), f"{kind} not monotone: {dist}"


@pytest.mark.parametrize("kind", IMAGE_SHIFTS)
def test_corruption_at_severity_3_moves_image_properties(kind: str, batch: torch.Tensor) -> None:
    before = image_properties(batch)
    after = image_properties(apply_shift(batch, kind, 3, seed=2))
    p = min(
        stats.ks_2samp(before[c], after[c], method="asymp").pvalue
        for c in ("brightness", "contrast", "sharpness")
    )
    assert p < 1e-3, (
        f"{kind} severity 3 left brightness/contrast/sharpness indistinguishable (p={p:.3g})"
    )


@pytest.mark.parametrize("kind", IMAGE_SHIFTS)
def test_shift_keeps_shape_and_dtype_and_is_deterministic(kind: str, batch: torch.Tensor) -> None:
    gray = batch[:4, :1]
    out = apply_shift(gray, kind, 5, seed=7)
    assert out.shape == gray.shape and out.dtype == torch.uint8
    assert torch.equal(out, apply_shift(gray, kind, 5, seed=7))


def test_bad_kind_severity_or_layout_fail_with_the_valid_choices(batch: torch.Tensor) -> None:
    with pytest.raises(ValueError, match="valid: gaussian_noise"):
        apply_shift(batch, "snow", 3)
    with pytest.raises(ValueError, match="label_shift"):
        apply_shift(batch, "knockout", 3)
    with pytest.raises(ValueError, match="1..5"):
        apply_shift(batch, "fog", 6)
    with pytest.raises(ValueError, match="uint8"):
        apply_shift(batch.float(), "fog", 1)


def test_knockout_removes_the_class_and_imbalance_makes_it_dominate() -> None:
    y = np.repeat(np.arange(10), 100)
    kept = y[label_shift(y, "knockout", 5, seed=0, target_class=3)]
    assert 3 not in kept and len(kept) == 900
    shares = [
        np.mean(y[label_shift(y, "class_imbalance", s, seed=0, target_class=3)] == 3)
        for s in range(1, 6)
    ]
    assert (
        shares[0] > 0.1
        and all(b > a for a, b in zip(shares, shares[1:], strict=False))
        and shares[-1] > 0.5
    )
    removed = [
        900 + 100 - len(label_shift(y, "knockout", s, seed=0, target_class=3)) for s in range(1, 6)
    ]
    assert all(b > a for a, b in zip(removed, removed[1:], strict=False))


def test_shift_folder_keeps_the_tree_and_label_shift_needs_classes(
    tmp_path, batch: torch.Tensor
) -> None:
    src = tmp_path / "src"
    for i, img in enumerate(batch[:12]):
        cls = src / f"c{i % 3}"
        cls.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img.permute(1, 2, 0).numpy()).save(cls / f"{i}.png")
    res = shift_folder(src, "contrast", 4, tmp_path / "out", seed=1)
    outs = sorted(p.relative_to(tmp_path / "out") for p in (tmp_path / "out").rglob("*.png"))
    assert res.n_out == 12 and outs == sorted(p.relative_to(src) for p in src.rglob("*.png"))
    a, b = (
        np.asarray(Image.open(src / "c0/0.png")),
        np.asarray(Image.open(tmp_path / "out/c0/0.png")),
    )
    assert a.shape == b.shape and b.std() < a.std()
    ko = shift_folder(src, "knockout", 5, tmp_path / "ko", seed=0)
    assert ko.n_out == 8 and len([d for d in (tmp_path / "ko").iterdir() if d.is_dir()]) == 2
    (tmp_path / "flat").mkdir()
    Image.fromarray(batch[0].permute(1, 2, 0).numpy()).save(tmp_path / "flat/x.png")
    with pytest.raises(ValueError, match="ImageFolder layout"):
        shift_folder(tmp_path / "flat", "knockout", 5, tmp_path / "ko2")
