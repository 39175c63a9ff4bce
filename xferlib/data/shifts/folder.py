"""`shift_folder`: a shifted copy of an image folder on disk, for the CLI and the demo."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from xferlib.data.shifts.api import LABEL_SHIFTS, SHIFT_KINDS, apply_shift, check_kind, label_shift

_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


@dataclass(frozen=True)
class ShiftFolderResult:
    """What `shift_folder` wrote: counts in and out, for the CLI's --json."""

    src: str
    out: str
    kind: str
    severity: int
    seed: int
    n_in: int
    n_out: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def shift_folder(
    src: str | Path, kind: str, severity: int, out: str | Path, seed: int = 0
) -> ShiftFolderResult:
    """Write a shifted copy of an image folder (ImageFolder `class/img` or flat) with the same tree.

    Corruptions re-encode each image in its own format and mode (L stays L, others become RGB);
    label shifts copy the kept files unchanged and need the ImageFolder layout (class = subfolder).
    """
    src, out = Path(src), Path(out)
    check_kind(kind, severity, SHIFT_KINDS)
    files = sorted(p for p in src.rglob("*") if p.is_file() and p.suffix.lower() in _IMAGE_SUFFIXES)
    if not files:
        raise ValueError(
            f"no images ({', '.join(sorted(_IMAGE_SUFFIXES))}) under {src}; check the path"
        )
    if kind in LABEL_SHIFTS:
        kept = _label_shift_files(src, files, kind, severity, seed)
        for rel in kept:
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            (out / rel).write_bytes((src / rel).read_bytes())
    else:
        kept = _corrupt_files(src, files, kind, severity, seed, out)
    return ShiftFolderResult(str(src), str(out), kind, severity, seed, len(files), len(kept))


def _label_shift_files(
    src: Path, files: list[Path], kind: str, severity: int, seed: int
) -> list[Path]:
    rels = [f.relative_to(src) for f in files]
    if any(len(r.parts) < 2 for r in rels):
        raise ValueError(
            f"{kind} needs an ImageFolder layout (src/<class>/<image>); {src} has loose images"
        )
    names = sorted({r.parts[0] for r in rels})
    labels = np.array([names.index(r.parts[0]) for r in rels])
    return [rels[i] for i in label_shift(labels, kind, severity, seed)]


def _corrupt_files(
    src: Path, files: list[Path], kind: str, severity: int, seed: int, out: Path
) -> list[Path]:
    """Corrupt same-size images together (one batch per size and mode), then write each back."""
    from PIL import Image

    groups: dict[tuple[tuple[int, int], str], list[tuple[Path, np.ndarray]]] = {}
    for f in files:
        with Image.open(f) as im:
            mode = "L" if im.mode == "L" else "RGB"
            groups.setdefault((im.size, mode), []).append((f, np.asarray(im.convert(mode))))
    written = []
    for i, (key, items) in enumerate(sorted(groups.items(), key=lambda kv: str(kv[1][0][0]))):
        arr = np.stack([a.reshape(a.shape[0], a.shape[1], -1) for _, a in items])
        batch = torch.from_numpy(arr).permute(0, 3, 1, 2).contiguous()
        shifted = apply_shift(batch, kind, severity, seed + i).permute(0, 2, 3, 1).numpy()
        for (f, _), img in zip(items, shifted, strict=True):
            rel = f.relative_to(src)
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(img.squeeze(-1) if key[1] == "L" else img, key[1]).save(out / rel)
            written.append(rel)
    return written
