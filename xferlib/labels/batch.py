"""An incident's label files on disk: the request batch annotators get, and the dataset of the
labels they sent back.

    labels/<incident>/request/images/<image_id>.<ext>   copies of the chosen images
                     request/tasks.json    Label Studio import (data.image, data.image_id)
                     request/batch.csv     image_id,path
                     request/selection.csv why each was chosen (window, entropy, prediction)
                     dataset/<class>/<image_id>.<ext>   accepted labels, an ImageFolder: what
                                           `xfer retrain --feedback` reads (class %-encoded)

The Label Studio tasks point at `/data/local-files/?d=images/<file>`: serve the request folder
with `LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true` and `LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT`
= that folder. Each task carries `image_id`, which its export keeps, so labels come back by id.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote

import pandas as pd

from xferlib.atomic import atomic_write_bytes, atomic_write_text

IMAGES, TASKS, BATCH_CSV, SELECTION_CSV = "images", "tasks.json", "batch.csv", "selection.csv"


@dataclass(frozen=True)
class RequestFiles:
    folder: str
    tasks_json: str
    batch_csv: str
    count: int


def write_request(folder: Path, chosen: pd.DataFrame) -> RequestFiles:
    """Copy each chosen image (column `source`: a path or s3:// URI) and write the exports."""
    images = folder / IMAGES
    images.mkdir(parents=True, exist_ok=True)
    names = [
        _fetch(str(src), images, str(iid))
        for src, iid in zip(chosen["source"], chosen["image_id"], strict=True)
    ]
    paths = [str((images / n).resolve()) for n in names]
    tasks = [
        {"data": {"image": f"/data/local-files/?d={IMAGES}/{n}", "image_id": str(iid)}}
        for n, iid in zip(names, chosen["image_id"], strict=True)
    ]
    atomic_write_text(folder / TASKS, json.dumps(tasks, indent=1))
    batch = pd.DataFrame({"image_id": chosen["image_id"].astype(str), "path": paths})
    atomic_write_text(folder / BATCH_CSV, batch.to_csv(index=False))
    atomic_write_text(folder / SELECTION_CSV, chosen.assign(path=paths).to_csv(index=False))
    return RequestFiles(str(folder), str(folder / TASKS), str(folder / BATCH_CSV), len(batch))


def _fetch(source: str, images: Path, image_id: str) -> str:
    """Copy one image into the batch as `<image_id><ext>`; the file name it got."""
    ext = Path(source.rsplit("/", 1)[-1]).suffix.lower() or ".png"
    name = f"{image_id}{ext}"
    if source.startswith("s3://"):
        from xferlib import storage

        atomic_write_bytes(images / name, storage.read_bytes(source))
    else:
        if not Path(source).is_file():
            raise FileNotFoundError(
                f"image {source} of the drifted window is gone; keep scored windows until "
                "their incident's label request is written"
            )
        shutil.copyfile(source, images / name)
    return name


def requested(folder: Path) -> dict[str, Path]:
    """The request's image ids -> their copied files (from batch.csv)."""
    path = folder / BATCH_CSV
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist; the incident has no label request yet")
    rows = csv.DictReader(io.StringIO(path.read_text()))
    return {r["image_id"]: Path(r["path"]) for r in rows}


def accepted_labels(dataset: Path) -> dict[str, str]:
    """Image id -> label of every image already in the accepted-labels dataset."""
    if not dataset.is_dir():
        return {}
    return {
        f.stem: unquote(d.name)
        for d in sorted(dataset.iterdir())
        if d.is_dir() and not d.name.startswith(".")
        for f in d.iterdir()
        if f.is_file()
    }


def add_to_dataset(dataset: Path, files: dict[str, Path], labels: dict[str, str]) -> None:
    """Copy each labelled image into `dataset/<class>/` (the ImageFolder retrain reads)."""
    for image_id, label in labels.items():
        src = files[image_id]
        dest = dataset / quote(label, safe="") / f"{image_id}{src.suffix}"
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest)


def class_counts(dataset: Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    for label in accepted_labels(dataset).values():
        counts[label] = counts.get(label, 0) + 1
    return dict(sorted(counts.items()))
