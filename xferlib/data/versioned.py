"""Ingest into a dataset of the work directory and version it: the one path every stage takes.

The data stage (`xfer ingest`) and the retrain stage (its labelled feedback) both validate and
store images, then `dvc add` and push the dataset. Nothing accepted means nothing versioned.
"""

from __future__ import annotations

from pathlib import Path

from xferlib import versioning
from xferlib.config import DataParams
from xferlib.data.ingest import IngestResult, ingest
from xferlib.data.shards import MANIFEST


def ingest_and_version(
    root: Path,
    src: Path,
    dataset_dir: Path,
    quarantine_dir: Path,
    params: DataParams,
    *,
    source: str,
    split: str | None = None,
    push: bool = True,
) -> tuple[IngestResult, str | None]:
    """`ingest` into `dataset_dir`, then track (and push) it; the data version, or None when no
    image was accepted (the counts say why)."""
    if not Path(src).exists():
        raise FileNotFoundError(
            f"ingest source {src} does not exist; pass an image folder or the Fashion-MNIST IDX dir"
        )
    result = ingest(Path(src), dataset_dir, quarantine_dir, params, source=source, split=split)
    if not (dataset_dir / MANIFEST).exists():
        return result, None
    version = versioning.track(root, dataset_dir)
    if push:
        versioning.push(root, [str(dataset_dir)])
    return result, str(version)
