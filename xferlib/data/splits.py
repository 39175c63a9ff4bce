"""Prepared splits: stratified train/val/test assignment, the label map, and loading one split.

A prepared directory holds `splits.parquet` (sha256, label, split) and `label_map.json`
(class name -> index). The prepare stage writes the source domain's; a retrain writes one per
feedback dataset (its own holdout carved the same way). Both read them back through here.
"""

from __future__ import annotations

import json
from collections.abc import Hashable
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from xferlib.data.imageset import ImageSet

SPLITS = "splits.parquet"
LABEL_MAP = "label_map.json"


def _stratified(labels: pd.Series, fraction: float, rng: np.random.Generator) -> pd.Index:
    """Index of a per-class random `fraction` (at least one per class when the class has ≥ 2)."""
    picked: list[Hashable] = []
    for _, group in labels.groupby(labels).groups.items():
        idx = list(group)
        rng.shuffle(idx)
        k = int(round(fraction * len(idx)))
        k = max(1, k) if len(idx) >= 2 and fraction > 0 else k
        picked.extend(idx[:k])
    return pd.Index(picked)


def make_splits(
    manifest: pd.DataFrame, val_fraction: float, labels_per_class: int | None, seed: int
) -> pd.DataFrame:
    """Stratified train/val/test splits; rows marked "test" at ingest stay the holdout."""
    rng = np.random.default_rng(seed)
    df = manifest[manifest["label"].notna()][["sha256", "label", "split"]].copy()
    if df.empty:
        raise ValueError(
            "the dataset has no labelled images; ingest an ImageFolder tree or the IDX files first"
        )
    df["split"] = df["split"].where(df["split"] == "test", "train")
    if not (df["split"] == "test").any():  # no official holdout: carve one
        df.loc[_stratified(df["label"], val_fraction, rng), "split"] = "test"
    pool = df[df["split"] == "train"]
    df.loc[_stratified(pool["label"], val_fraction, rng), "split"] = "val"
    if labels_per_class is not None:
        train = df[df["split"] == "train"]
        keep = train.groupby("label", group_keys=False).apply(
            lambda g: g.sample(n=min(len(g), labels_per_class), random_state=seed)
        )
        df = df[(df["split"] != "train") | df.index.isin(keep.index)]
    return df.reset_index(drop=True)


def read_splits(prepared: Path) -> pd.DataFrame:
    return pd.read_parquet(prepared / SPLITS)


def read_label_map(prepared: Path) -> dict[str, int]:
    path = prepared / LABEL_MAP
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist; run `xfer prepare` first")
    raw = json.loads(path.read_text())
    return {str(k): int(v) for k, v in raw.items()}


def class_names(prepared: Path) -> list[str]:
    """Class names in label-index order."""
    label_map = read_label_map(prepared)
    return sorted(label_map, key=label_map.__getitem__)


def load_split(dataset_dir: Path, prepared: Path, split: str) -> ImageSet:
    """The images of one prepared split as an ImageSet (labels through the label map)."""
    from xferlib.data.shards import load_imageset, read_manifest

    splits = read_splits(prepared)
    label_map = read_label_map(prepared)
    manifest = read_manifest(dataset_dir).drop_duplicates("sha256").set_index("sha256")
    rows = manifest.loc[splits.loc[splits["split"] == split, "sha256"]].reset_index()
    unknown = sorted(set(rows["label"]) - set(label_map))
    if unknown:
        raise ValueError(
            f"labels {unknown} are not in the label map {sorted(label_map)}; re-run prepare"
        )
    return load_imageset(dataset_dir, rows, label_map=label_map)


def load_unlabelled(dataset_dir: Path, prepared: Path, limit: int, seed: int) -> ImageSet:
    """The dataset's images outside every prepared split, without labels: unlabelled images and
    the train images a few-label run (`prepare.labels_per_class`) left out. At most `limit`, a
    seeded sample when there are more; an empty ImageSet when there are none."""
    from xferlib.data.shards import load_imageset, read_manifest

    used = set(read_splits(prepared)["sha256"])
    manifest = read_manifest(dataset_dir).drop_duplicates("sha256")
    rows = manifest[~manifest["sha256"].isin(used)]
    if len(rows) > limit:
        rows = rows.sample(n=limit, random_state=seed)
    if rows.empty:
        return ImageSet(torch.zeros((0, 3, 1, 1), dtype=torch.uint8), None, [])
    return load_imageset(dataset_dir, rows.reset_index(drop=True))
