"""DVC on xfer shards vs the same images as loose PNG files: `dvc add`, `dvc push`, `dvc pull`.

For each size N (the first N Fashion-MNIST train images), measured, never projected:
- "shards": the IDX subset is ingested once with `xferlib.data.ingest.ingest` (validated RGB PNGs
  in 4,096-image shards + manifest); each repetition copies it into a fresh git + DVC repo
  (`xferlib.versioning.init_repo`, a fresh local remote outside the repo) and times
  add = `versioning.track` (dvc add + git commit), push = `versioning.push`, and
  pull = `versioning.pull` in a fresh `git clone` of the repo (an empty cache).
- "loose": the same stored PNG bytes, one file per image under <class>/<sha256>.png, same calls.
Repo creation, copying and deleting are setup and not timed. Method: one warm-up round at the
first size, then per size --pairs rounds of (shards, loose), order flipped every round
(`common.interleaved_rounds`); each ratio = loose seconds / shard seconds per round (add + push +
pull, and each phase), median with min and max.

Sizes: 2,000 and 10,000 images by default. 60,000 loose files took ~2-2.5 min per repetition
here (11 repetitions: ~25 min with the shard ones), so the default stops at 10,000;
`--sizes 2000 10000 60000` measures larger sizes the same way (~35 min). A size whose loose repetitions would exceed --cap-minutes in
total, projected from the largest size measured so far, is skipped and listed in `skipped` with
the projection; no figure is extrapolated.

    .venv/bin/python bench/dvc_shards.py             # ~5 min on an idle 2-core box
    .venv/bin/python bench/dvc_shards.py --quick --out /tmp/dvc_shards.json   # smoke, ~1.5 min

--quick: 300 images only; still 12 repetitions of ~7 dvc/git process starts each (5 pairs and
the warm-up), which is what its time is made of (2.4 min at load average 8). Writes bench/results/dvc_shards.json.
"""

from __future__ import annotations

import argparse
import gzip
import shutil
import struct
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from common import (
    interleaved_rounds,
    machine,
    pair_up,
    quiet_env,
    sampling_load,
    spread,
    start,
    write_result,
)

from xferlib import versioning
from xferlib.config import DataParams
from xferlib.data.fashion import class_dirname, load_fashion_mnist
from xferlib.data.ingest import ingest
from xferlib.data.shards import read_image_bytes, read_manifest

PHASES = ("add", "push", "pull")
SIZES = [2_000, 10_000]
QUICK_SIZES = [300]


def write_idx_subset(out: Path, n: int) -> Path:
    """The first `n` train images + labels as IDX files (the format Debian ships)."""
    x, y = load_fashion_mnist(split="train", limit=n)
    out.mkdir(parents=True)
    with gzip.open(out / "train-images-idx3-ubyte.gz", "wb", compresslevel=1) as f:
        f.write(struct.pack(">BBBBIII", 0, 0, 0x08, 3, *x.shape) + x.tobytes())
    with gzip.open(out / "train-labels-idx1-ubyte.gz", "wb", compresslevel=1) as f:
        f.write(struct.pack(">BBBBI", 0, 0, 0x08, 1, len(y)) + y.astype(np.uint8).tobytes())
    return out


def stage(root: Path, n: int) -> tuple[Path, Path]:
    """Ingest n images into shards, and export the same PNG bytes as loose files (untimed)."""
    shards = root / "staged-shards" / "fmnist"
    idx = write_idx_subset(root / "idx", n)
    ingest(idx, shards, root / "quarantine", DataParams(), source="bench", split="train")
    loose = root / "staged-loose" / "fmnist"
    for _, row in read_manifest(shards).iterrows():
        folder = loose / class_dirname(str(row["label"]))
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{row['sha256']}.png").write_bytes(read_image_bytes(shards, row))
    return shards, loose


def time_dvc(work: Path, staged: Path, phases: list[dict[str, float]]) -> float:
    """One repetition in a fresh repo + remote: add, push, pull into a fresh clone; total seconds."""
    repo = work / "repo"
    versioning.init_repo(repo, remote=str(work / "remote"))
    dataset = repo / "data" / "fmnist"
    shutil.copytree(staged, dataset)
    times: dict[str, float] = {}
    t0 = time.perf_counter()
    versioning.track(repo, dataset)
    times["add"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    versioning.push(repo, retries=1)
    times["push"] = time.perf_counter() - t0
    clone = work / "clone"
    subprocess.run(["git", "clone", "-q", str(repo), str(clone)], check=True)
    t0 = time.perf_counter()
    versioning.pull(clone, retries=1)
    times["pull"] = time.perf_counter() - t0
    times["files_pulled"] = sum(1 for p in (clone / "data" / "fmnist").rglob("*") if p.is_file())
    shutil.rmtree(work)  # untimed; keeps the disk from filling with copies of small files
    phases.append(times)
    return sum(times[p] for p in PHASES)


def make_runs(
    tmp: Path, staged: dict[str, Path], phases: dict[str, list[dict[str, float]]]
) -> dict[str, Callable[[], float]]:
    counter = iter(range(1_000_000))

    def run(kind: str) -> float:
        return time_dvc(tmp / f"{kind}-{next(counter)}", staged[kind], phases[kind])

    return {kind: (lambda kind=kind: run(kind)) for kind in ("shards", "loose")}


def measure_size(tmp: Path, n: int, pairs: int, warmup: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    shards, loose = stage(tmp / f"stage-{n}", n)
    setup_s = time.perf_counter() - t0
    phases: dict[str, list[dict[str, float]]] = {"shards": [], "loose": []}
    secs = interleaved_rounds(
        make_runs(tmp, {"shards": shards, "loose": loose}, phases), pairs, warmup
    )
    kept = {kind: rows[warmup:] for kind, rows in phases.items()}  # drop the warm-up repetitions
    by_phase = {p: {kind: [r[p] for r in kept[kind]] for kind in kept} for p in PHASES}
    row = {
        "images": n,
        "files_tracked": {
            "shards": sum(1 for p in shards.rglob("*") if p.is_file()),
            "loose": sum(1 for p in loose.rglob("*") if p.is_file()),
        },  # fmt: skip
        "files_pulled": {kind: kept[kind][-1]["files_pulled"] for kind in kept},
        "seconds_total": {kind: spread(v) for kind, v in secs.items()},
        "seconds_by_phase": {p: {k: spread(v) for k, v in d.items()} for p, d in by_phase.items()},
        "loose_over_shards": pair_up(secs, "loose", "shards"),
        "loose_over_shards_by_phase": {
            p: pair_up(d, "loose", "shards") for p, d in by_phase.items()
        },
        "setup_ingest_and_export_s": setup_s,
    }
    shutil.rmtree(tmp / f"stage-{n}")
    return row


def main() -> None:
    start()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=None, help="images per size")
    ap.add_argument("--pairs", type=int, default=5, help="interleaved rounds per size (>= 5)")
    ap.add_argument("--cap-minutes", type=float, default=20.0, help="skip a size projected longer")
    ap.add_argument("--quick", action="store_true", help="smoke run: 300 images only")
    ap.add_argument("--out", type=Path, default=None, help="write here, not bench/results/")
    args = ap.parse_args()
    sizes = sorted(args.sizes or (QUICK_SIZES if args.quick else SIZES))
    quiet_env()
    rows: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="xfer-bench-dvc-") as tmp, sampling_load(10.0) as load:
        for n in sizes:
            projected = _projected_s(rows, n, args.pairs)
            if projected > args.cap_minutes * 60:
                skipped.append({"images": n, "projected_loose_s_all_repetitions": projected,
                                "cap_minutes": args.cap_minutes})  # fmt: skip
                continue
            rows.append(measure_size(Path(tmp), n, args.pairs, warmup=int(not rows)))
            r = rows[-1]["loose_over_shards"]["ratio"]
            print(f"{n} images: loose/shards {r['median']:.1f} ({r['min']:.1f}-{r['max']:.1f})")
    result = {
        "what": "seconds of dvc add + push + pull (fresh repo, fresh local remote, pull into a "
        "fresh clone): loose PNG files / xfer shards, same images",
        "method": "one warm-up round at the first size, then per size `pairs` rounds of shards "
        "and loose, order flipped every round; ratio per round; median, min, max",
        "sizes_note": "60,000 loose files took ~2-2.5 min per repetition here; the default sizes "
        "stop at 10,000 to keep the run near 5 min; --sizes measures larger ones the same way",
        "quick": args.quick,
        "pairs": args.pairs,
        "rows": rows,
        "skipped": skipped,
        "remote": "local directory",
        "load_average_1m": load.summary(),
        "machine": machine(),
    }
    write_result("dvc_shards", result, args.out)


def _projected_s(rows: list[dict[str, Any]], n: int, pairs: int) -> float:
    """Loose seconds for all repetitions at n, linear from the largest size measured (0 if none)."""
    if not rows:
        return 0.0
    last = rows[-1]
    return last["seconds_total"]["loose"]["median"] * n / last["images"] * pairs


if __name__ == "__main__":
    main()
