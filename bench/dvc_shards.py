"""DVC on xfer shards vs the same images as loose PNG files: `dvc add`, `dvc push`, `dvc pull`.

For each size N (the first N Fashion-MNIST train images):
- "shards": the IDX subset is ingested once with `xferlib.data.ingest.ingest` and copied into a
  git + DVC repo (`xferlib.versioning.init_repo`, a local remote outside the repo), then timed:
  add = `versioning.track` (dvc add + git commit), push = `versioning.push`, pull = `dvc pull`
  (`versioning.pull`) in a fresh `git clone` of the repo, i.e. an empty cache.
- "loose": the same stored PNG bytes, one file per image under <class>/<sha256>.png, same calls.
The shard case runs before and after the loose one (mean of the two) so both see similar load.
Ingest/export time is setup and not in the ratio. A loose size whose projected time (linear from
the previous size) exceeds --cap-minutes is skipped, and the skip is recorded.

    .venv/bin/python bench/dvc_shards.py [--sizes 10000 20000 60000] [--cap-minutes 15]

Writes bench/results/dvc_shards.json: "ratio" = loose seconds / shard seconds (add + push +
pull) at the largest size where both were measured (target >= 10).
"""

from __future__ import annotations

import argparse
import gzip
import shutil
import struct
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from common import machine, quiet_env, sampling_load, write_result

from xferlib import versioning
from xferlib.config import DataParams
from xferlib.data.fashion import class_dirname, load_fashion_mnist
from xferlib.data.ingest import ingest
from xferlib.data.shards import read_image_bytes, read_manifest

PHASES = ("add", "push", "pull")


def write_idx_subset(out: Path, n: int) -> Path:
    """The first `n` train images + labels as IDX files (the format Debian ships)."""
    x, y = load_fashion_mnist(split="train", limit=n)
    out.mkdir(parents=True)
    with gzip.open(out / "train-images-idx3-ubyte.gz", "wb", compresslevel=1) as f:
        f.write(struct.pack(">BBBBIII", 0, 0, 0x08, 3, *x.shape) + x.tobytes())
    with gzip.open(out / "train-labels-idx1-ubyte.gz", "wb", compresslevel=1) as f:
        f.write(struct.pack(">BBBBI", 0, 0, 0x08, 1, len(y)) + y.astype(np.uint8).tobytes())
    return out


def ingest_shards(root: Path, idx: Path) -> tuple[Path, float]:
    """Ingest the IDX subset once into a staging dataset folder; returns (folder, seconds)."""
    t0 = time.perf_counter()
    staged = root / "staged" / "fmnist"
    ingest(idx, staged, root / "quarantine", DataParams(), source="bench", split="train")
    return staged, time.perf_counter() - t0


def shard_repo(root: Path, staged: Path) -> tuple[Path, Path]:
    """A repo whose data/fmnist is a copy of the staged shards + manifest."""
    repo = root / "repo"
    versioning.init_repo(repo, remote=str(root / "remote"))
    shutil.copytree(staged, repo / "data" / "fmnist")
    return repo, repo / "data" / "fmnist"


def loose_repo(root: Path, shards: Path) -> tuple[Path, Path, float]:
    """A repo whose data/fmnist holds the same PNG bytes as one file per image."""
    repo = root / "repo"
    versioning.init_repo(repo, remote=str(root / "remote"))
    t0 = time.perf_counter()
    dataset = repo / "data" / "fmnist"
    for _, row in read_manifest(shards).iterrows():
        folder = dataset / class_dirname(str(row["label"]))
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{row['sha256']}.png").write_bytes(read_image_bytes(shards, row))
    return repo, dataset, time.perf_counter() - t0


def time_dvc(root: Path, repo: Path, dataset: Path) -> dict[str, float]:
    """Seconds of track (dvc add + commit), push, and pull into a fresh clone."""
    out: dict[str, float] = {}
    t0 = time.perf_counter()
    versioning.track(repo, dataset)
    out["add"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    versioning.push(repo, retries=1)
    out["push"] = time.perf_counter() - t0
    clone = root / "clone"
    subprocess.run(["git", "clone", "-q", str(repo), str(clone)], check=True)
    t0 = time.perf_counter()
    versioning.pull(clone, retries=1)
    out["pull"] = time.perf_counter() - t0
    pulled = sum(1 for p in (clone / "data" / "fmnist").rglob("*") if p.is_file())
    out["total"] = sum(out[p] for p in PHASES)
    out["files_pulled"] = pulled
    return out


def measure_size(tmp: Path, n: int, run_loose: bool) -> dict[str, Any]:
    """Shards, loose (optional), shards again, at size `n`."""
    staged, ingest_s = ingest_shards(tmp / f"ingest-{n}", write_idx_subset(tmp / f"idx-{n}", n))
    row: dict[str, Any] = {"images": n, "ingest_s": ingest_s, "shards": []}
    row["shard_files"] = len(list((staged / "shards").glob("*.bin")))
    for rep in range(2 if run_loose else 1):
        repo, shards_dir = shard_repo(tmp / f"shards-{n}-{rep}", staged)
        times = time_dvc(tmp / f"shards-{n}-{rep}", repo, shards_dir)
        row["shards"].append(times)
        print(f"[{n}] shards rep {rep}: {times}", flush=True)
        if run_loose and rep == 0:
            repo_l, loose_dir, export_s = loose_repo(tmp / f"loose-{n}", staged)
            row["loose"] = time_dvc(tmp / f"loose-{n}", repo_l, loose_dir) | {"export_s": export_s}
            print(f"[{n}] loose: {row['loose']}", flush=True)
    row["shard_total_s"] = sum(r["total"] for r in row["shards"]) / len(row["shards"])
    if "loose" in row:
        row["ratio"] = row["loose"]["total"] / row["shard_total_s"]
        row["ratio_by_phase"] = {
            p: row["loose"][p] / (sum(r[p] for r in row["shards"]) / len(row["shards"]))
            for p in PHASES
        }
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 20_000, 60_000])
    ap.add_argument(
        "--cap-minutes", type=float, default=15.0, help="skip a loose size projected to take longer"
    )
    args = ap.parse_args()
    quiet_env()
    rows: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="xfer-bench-dvc-") as tmp, sampling_load(10.0) as load:
        for n in sorted(args.sizes):
            last = next((r for r in reversed(rows) if "loose" in r), None)
            projected = last["loose"]["total"] * n / last["images"] if last else 0.0
            run_loose = projected <= args.cap_minutes * 60
            if not run_loose:
                skipped.append({"images": n, "projected_loose_s": projected})
            rows.append(measure_size(Path(tmp), n, run_loose))
        # written before the temp dir goes: deleting ~400k small files takes minutes here
        result = summarise(rows, skipped, load.summary())
        path = write_result("dvc_shards", result)
    print(
        f"loose / shard seconds at {result['ratio_at_images']} images: {result['ratio']:.1f}; wrote {path}"
    )


def summarise(
    rows: list[dict[str, Any]], skipped: list[dict[str, Any]], load: dict[str, float]
) -> dict[str, Any]:
    """The result JSON: the headline at the largest size measured both ways, plus scaling."""
    measured = [r for r in rows if "loose" in r]
    head = measured[-1]
    return {
        "ratio": round(head["ratio"], 2),
        "what": "seconds of dvc add + push + pull (fresh clone, local remote): loose PNG files / xfer shards",
        "ratio_at_images": head["images"],
        "rows": rows,
        "loose_skipped": skipped,
        "loose_s_per_1k_images": {
            r["images"]: 1000 * r["loose"]["total"] / r["images"] for r in measured
        },
        "shard_s_per_1k_images": {
            r["images"]: 1000 * r["shard_total_s"] / r["images"] for r in rows
        },
        "extrapolated_60k_ratio": _extrapolate(rows, 60_000),
        "load_average_1m": load,
        "machine": machine()
        | {
            "dvc": "3.67.1",
            "remote": "local directory",
            "cache.type": "dvc default (reflink,copy)",
        },
    }


def _extrapolate(rows: list[dict[str, Any]], n: int) -> float | None:
    """Loose time scaled linearly from the largest measured size, over shard time measured at n."""
    measured = [r for r in rows if "loose" in r]
    at_n = next((r for r in rows if r["images"] == n), None)
    if not measured or at_n is None:
        return None
    last = measured[-1]
    return round(last["loose"]["total"] * n / last["images"] / at_n["shard_total_s"], 2)


if __name__ == "__main__":
    main()
