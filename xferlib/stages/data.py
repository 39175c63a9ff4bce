"""Data stages: init the work directory, ingest + version images, prepare splits."""

from __future__ import annotations

import os
import shutil
from importlib import resources
from pathlib import Path

from xferlib.atomic import atomic_write_text
from xferlib.context import Context, write_json
from xferlib.stages.results import IngestStageResult, InitResult, PrepareResult
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


def init(workdir: str | os.PathLike[str] | None, remote: str | None = None) -> InitResult:
    """Make the work directory a git + DVC repo with params.yaml, dvc.yaml and a DVC remote."""
    from xferlib import versioning

    wd = Workdir.resolve(workdir).ensure()
    for target in (wd.params_file, wd.dvc_yaml):
        if not target.exists():
            template = resources.files("xferlib").joinpath("templates", target.name)
            atomic_write_text(target, template.read_text())
    if not wd.gitignore.exists():
        atomic_write_text(wd.gitignore, _GITIGNORE)
    versioning.init_repo(wd.root, remote)
    versioning.commit_pipeline(wd.root, "xfer: init the pipeline (params.yaml, dvc.yaml)")
    return InitResult(workdir=str(wd.root), remote=versioning.remote_url(wd.root))


def ensure_init(wd: Workdir) -> None:
    if not wd.dvc_dir.is_dir():
        init(wd.root)


def ingest(
    workdir: str | os.PathLike[str] | None,
    src: Path,
    *,
    dataset: str | None = None,
    split: str | None = None,
    push: bool = True,
    source: str | None = None,
) -> IngestStageResult:
    """Validate, de-duplicate and store images as shards; version the dataset with DVC and push."""
    from xferlib.data.versioned import ingest_and_version

    ctx = Context.load(workdir)
    ensure_init(ctx.wd)
    name = dataset or ctx.params.data.dataset
    result, version = ingest_and_version(
        ctx.wd.root,
        Path(src),
        ctx.wd.dataset(name),
        ctx.wd.quarantine,
        ctx.params.data,
        source=source or str(src),
        split=split,
        push=push,
    )
    if version is None:  # nothing accepted: nothing to version (the counts say why)
        return IngestStageResult(result, name, data_version=None, pushed=False)
    return IngestStageResult(result, name, data_version=version, pushed=push)


def prepare(
    workdir: str | os.PathLike[str] | None, params_path: str | None = None
) -> PrepareResult:
    """`dvc.yaml` stage prepare: splits.parquet + label_map.json from the dataset's manifest."""
    from xferlib import versioning
    from xferlib.data.shards import read_manifest
    from xferlib.data.splits import LABEL_MAP, SPLITS, make_splits

    ctx = Context.load(workdir, params_path)
    versioning.commit_pipeline(ctx.wd.root, "xfer: pipeline before prepare")
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
    splits.to_parquet(out_dir / SPLITS, index=False)
    write_json(out_dir / LABEL_MAP, {c: i for i, c in enumerate(classes)})
    version = versioning.data_version(ctx.wd.root, ds)
    summary = PrepareResult(
        dataset=p.data.dataset,
        data_version=str(version),
        classes=len(classes),
        counts={s: int((splits["split"] == s).sum()) for s in ("train", "val", "test")},
        warnings=[f"class {c!r} has a single image: it is in train only" for c in tiny],
    )
    write_json(out_dir / "prepare.json", summary.to_dict())
    return summary
