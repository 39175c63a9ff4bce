"""Decode + transform throughput: xfer shards vs loose PNG files through a torch DataLoader,
at 1 and at 2 torch threads, in one run and one result file.

Both paths start from the same PNG bytes: the first --images of the 10k-image Fashion-MNIST test
split are ingested with `xferlib.data.ingest.ingest` (IDX -> validated RGB PNGs in
content-addressed shards), and each stored image's bytes are also written out as one loose `.png`.
- "shard": `load_imageset` (one read per shard, PIL decode per image, one uint8 tensor) then the
  backbone's `Preprocess` per batch of 64 (resize to --image-size, normalise): what xfer does.
- "shard_decode_only": `load_imageset` alone.
- "loose_wK": a map-style Dataset (PIL open + RGB per file, torchvision Resize + ToTensor +
  Normalize) in a `DataLoader(batch_size=64, num_workers=K)`, K in 0/1/2: the usual way.
Each of these runs at 1 and at 2 torch threads (`torch.set_num_threads` in the main process;
DataLoader workers always run 1 thread each): 10 runs. On an oversubscribed 2-core machine
2 threads can make `Preprocess` slower (OpenMP barrier waits while the other core is busy), which
is why both are reported. Method: one warm-up round, then --pairs rounds of all 10 in listed order
then reversed (`common.interleaved_rounds`); each ratio = loose seconds / shard seconds for the
same images in the same round (= shard img/s / loose img/s), median with min and max, for every
K and both thread counts (no "best of" selection). Then the training step's own rate
(EfficientNet-Lite0, the demo backbone, at --image-size, xfer's runtime, torch's default threads)
says whether the loop could wait on data (absolute img/s, not a paired ratio).

    .venv/bin/python bench/data_path.py              # ~4 min on an idle 2-core box
    .venv/bin/python bench/data_path.py --quick --out /tmp/data_path.json   # smoke, < 1 min

--quick: 1,000 images, 2 train steps. Writes bench/results/data_path.json (it replaces the old
data_path.json + data_path_2threads.json pair).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
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
from PIL import Image

from xferlib.config import DataParams
from xferlib.data.fashion import FASHION_ROOT
from xferlib.data.imageset import Preprocess
from xferlib.data.ingest import ingest
from xferlib.data.shards import load_imageset, read_image_bytes, read_manifest

BATCH = 64
WORKERS = (0, 1, 2)
THREADS = (1, 2)


class LooseFiles(torch.utils.data.Dataset):
    """One PNG file per image, decoded and transformed per item (torchvision style)."""

    def __init__(self, paths: list[Path], pre: Preprocess) -> None:
        from torchvision import transforms as T

        self.paths = paths
        self.transform = T.Compose(
            [T.Resize(pre.image_size), T.ToTensor(), T.Normalize(pre.mean, pre.std)]
        )

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> torch.Tensor:
        with Image.open(self.paths[i]) as img:
            return self.transform(img.convert("RGB"))


def prepare(root: Path, n: int) -> tuple[Path, list[Path]]:
    """Ingest the test split into shards; write the same PNG bytes as loose files."""
    dataset = root / "data" / "fmnist"
    ingest(
        Path(FASHION_ROOT), dataset, root / "quarantine", DataParams(), source="bench", split="test"
    )
    manifest = read_manifest(dataset).head(n)
    loose = root / "loose"
    loose.mkdir()
    paths = []
    for _, row in manifest.iterrows():
        path = loose / f"{row['sha256']}.png"
        path.write_bytes(read_image_bytes(dataset, row))
        paths.append(path)
    return dataset, paths


def shard_pass(dataset: Path, pre: Preprocess, n: int, decode_only: bool = False) -> float:
    """Seconds to decode `n` images from shards (and preprocess them per batch)."""
    t0 = time.perf_counter()
    images = load_imageset(dataset, read_manifest(dataset).head(n)).images
    if not decode_only:
        for i in range(0, len(images), BATCH):
            pre(images[i : i + BATCH])
    return time.perf_counter() - t0


def loose_pass(paths: list[Path], pre: Preprocess, workers: int) -> float:
    t0 = time.perf_counter()
    loader = torch.utils.data.DataLoader(
        LooseFiles(paths, pre), batch_size=BATCH, num_workers=workers
    )
    for _ in loader:
        pass
    return time.perf_counter() - t0


def train_rate(image_size: int, steps: int) -> dict[str, Any]:
    """img/s of xfer's train step (full fine-tune) and frozen forward, EfficientNet-Lite0."""
    from xferlib.config import FinetuneParams
    from xferlib.finetune import resolve_runtime
    from xferlib.finetune.runtime import place_model
    from xferlib.models import Classifier, create_backbone

    model = Classifier(create_backbone("efficientnet_lite0", image_size=image_size), 10)
    rt = resolve_runtime(FinetuneParams(device="cpu"), model)
    place_model(model, rt)
    x, y = rt.layout(torch.randn(BATCH, 3, image_size, image_size)), torch.randint(0, 10, (BATCH,))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step() -> None:
        with rt.autocast():
            loss = F.cross_entropy(model(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step()  # warm-up
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    train = steps * BATCH / (time.perf_counter() - t0)
    model.eval()
    with torch.no_grad(), rt.autocast():
        model(x)
        t0 = time.perf_counter()
        for _ in range(steps):
            model(x)
    return {"train_img_per_s": train, "frozen_forward_img_per_s": steps * BATCH / (time.perf_counter() - t0),
            "precision": rt.precision}  # fmt: skip


def with_threads(threads: int, fn: Callable[[], float]) -> Callable[[], float]:
    """Run `fn` with `threads` torch threads in this process, restoring the previous count."""

    def run() -> float:
        before = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            return fn()
        finally:
            torch.set_num_threads(before)

    return run


def data_runs(dataset: Path, paths: list[Path], pre: Preprocess) -> dict[str, Callable[[], float]]:
    """The 10 timed passes: each path at each thread count, named `<path>@<threads>t`."""
    n = len(paths)
    base: dict[str, Callable[[], float]] = {
        "shard": lambda: shard_pass(dataset, pre, n),
        "shard_decode_only": lambda: shard_pass(dataset, pre, n, decode_only=True),
    }
    base |= {f"loose_w{k}": (lambda k=k: loose_pass(paths, pre, k)) for k in WORKERS}
    return {f"{name}@{t}t": with_threads(t, fn) for t in THREADS for name, fn in base.items()}


def summarise(secs: dict[str, list[float]], n: int) -> dict[str, Any]:
    """Per thread count: img/s of every path, and shard vs each loose loader as paired ratios."""
    out: dict[str, Any] = {}
    for t in THREADS:
        names = [k for k in secs if k.endswith(f"@{t}t")]
        out[f"{t}_threads"] = {
            "img_per_s_median": {k.split("@")[0]: n / spread(secs[k])["median"] for k in names},
            "seconds": {k.split("@")[0]: spread(secs[k]) for k in names},
            "shard_over_loose": {
                f"loose_w{k}": pair_up(secs, f"loose_w{k}@{t}t", f"shard@{t}t") for k in WORKERS
            },
        }
    return out


def main() -> None:
    start()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=10_000)
    ap.add_argument("--image-size", type=int, default=64)
    ap.add_argument("--pairs", type=int, default=5, help="interleaved rounds (>= 5)")
    ap.add_argument("--train-steps", type=int, default=6)
    ap.add_argument("--quick", action="store_true", help="smoke run: 1,000 images, 2 train steps")
    ap.add_argument("--out", type=Path, default=None, help="write here, not bench/results/")
    args = ap.parse_args()
    if args.quick:
        args.images, args.train_steps = 1_000, 2
    train_threads = torch.get_num_threads()
    quiet_env()
    pre = Preprocess(args.image_size, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))  # Lite0's transform
    with tempfile.TemporaryDirectory(prefix="xfer-bench-data-") as tmp, sampling_load() as load:
        t0 = time.perf_counter()
        dataset, paths = prepare(Path(tmp), args.images)
        setup_s = time.perf_counter() - t0
        secs = interleaved_rounds(data_runs(dataset, paths, pre), args.pairs)
        train = train_rate(args.image_size, args.train_steps) | {"threads": train_threads}
    result = {
        "what": "decode + transform img/s: xfer shards (load_imageset + Preprocess) vs loose PNG "
        "files through a DataLoader (num_workers 0/1/2), same images, at 1 and 2 torch threads",
        "method": "one warm-up round, then `pairs` rounds of the 10 passes in listed order then "
        "reversed; shard_over_loose = loose seconds / shard seconds per round; median, min, max",
        "images": len(paths),
        "image_size": args.image_size,
        "batch": BATCH,
        "workers": list(WORKERS),
        "threads": list(THREADS),
        "quick": args.quick,
        "pairs": args.pairs,
        "by_threads": summarise(secs, len(paths)),
        "train_step": train,
        "setup_ingest_and_export_s": setup_s,
        "load_average_1m": load.summary(),
        "machine": machine(),
    }
    write_result("data_path", result, args.out)


if __name__ == "__main__":
    main()
