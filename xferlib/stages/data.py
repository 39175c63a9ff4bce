"""Data stages: init the work directory, ingest + version images, prepare splits."""

from __future__ import annotations

import os
import shutil
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from xferlib.stages.context import Context, write_json
from xferlib.workdir import Workdir

# Outputs that live in the work dir but are not versioned by git (DVC tracks data/ itself).
_GITIGNORE = """mlflow.db
mlartifacts/
monitoring/
reports/
references/
state/
checkpoints/
.xfer-cache/
.dvcstore/
alerts.jsonl
quarantine/
prefect/
feedback/
prepared-feedback/
models/
logs/
incoming/
demo-summary.json
"""


def init(workdir: str | os.PathLike[str] | None, remote: str | None = None) -> dict[str, Any]:
    """Make the work directory a git + DVC repo with params.yaml, dvc.yaml and a DVC remote."""
    from xferlib import versioning

    wd = Workdir.resolve(workdir).ensure()
    for name in ("params.yaml", "dvc.yaml"):
        target = wd.root / name
        if not target.exists():
            target.write_text(resources.files("xferlib").joinpath("templates", name).read_text())
    gi = wd.root / ".gitignore"
    if not gi.exists():
        gi.write_text(_GITIGNORE)
    versioning.init_repo(wd.root, remote)
    return {"workdir": str(wd.root), "remote": remote or str(wd.dvc_remote)}


def ensure_init(wd: Workdir) -> None:
    if not (wd.root / ".dvc").is_dir():
        init(wd.root)


def ingest(
    workdir: str | os.PathLike[str] | None,
    src: Path,
    *,
    dataset: str | None = None,
    split: str | None = None,
    push: bool = True,
    source: str | None = None,
) -> dict[str, Any]:
    """Validate, de-duplicate and store images as shards; version the dataset with DVC and push."""
    from xferlib import versioning
    from xferlib.data.ingest import ingest as run_ingest

    ctx = Context.load(workdir)
    ensure_init(ctx.wd)
    if not Path(src).exists():
        raise FileNotFoundError(
            f"ingest source {src} does not exist; pass an image folder or the Fashion-MNIST IDX dir"
        )
    name = dataset or ctx.params.data.dataset
    result = run_ingest(
        Path(src),
        ctx.wd.dataset(name),
        ctx.wd.quarantine,
        ctx.params.data,
        source=source or str(src),
        split=split,
    )
    out = result.to_dict()
    if not (ctx.wd.dataset(name) / "manifest.parquet").exists():
        out.update(dataset=name, data_version=None, pushed=False)
        return out  # nothing accepted: nothing to version (the counts say why)
    version = versioning.track(ctx.wd.root, ctx.wd.dataset(name))
    if push:
        versioning.push(ctx.wd.root, [str(ctx.wd.dataset(name))])
    out.update(dataset=name, data_version=str(version), pushed=push)
    return out


def _stratified(labels: pd.Series, fraction: float, rng: np.random.Generator) -> pd.Index:
    """Index of a per-class random `fraction` (at least one per class when the class has ≥ 2)."""
    picked: list[Any] = []
    for _, idx in labels.groupby(labels).groups.items():
        idx = list(idx)
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


def prepare(
    workdir: str | os.PathLike[str] | None, params_path: str | None = None
) -> dict[str, Any]:
    """`dvc.yaml` stage prepare: splits.parquet + label_map.json from the dataset's manifest."""
    from xferlib import versioning
    from xferlib.data.shards import read_manifest

    ctx = Context.load(workdir, params_path)
    p = ctx.params
    ds = ctx.wd.dataset(p.data.dataset)
    manifest = read_manifest(ds)
    splits = make_splits(
        manifest, p.prepare.val_fraction, p.prepare.labels_per_class, p.prepare.seed
    )
    counts = splits.groupby("label").size()
    tiny = sorted(counts[counts < 2].index)
    classes = sorted(counts.index)
    out_dir = ctx.wd.prepared
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    splits.to_parquet(out_dir / "splits.parquet", index=False)
    write_json(out_dir / "label_map.json", {c: i for i, c in enumerate(classes)})
    version = versioning.data_version(ctx.wd.root, ds)
    summary = {
        "dataset": p.data.dataset,
        "data_version": str(version),
        "classes": len(classes),
        "counts": {s: int((splits["split"] == s).sum()) for s in ("train", "val", "test")},
        "warnings": [f"class {c!r} has a single image: it is in train only" for c in tiny],
    }
    write_json(out_dir / "prepare.json", summary)
    return summary
