"""Decode + transform throughput: xfer shards vs loose PNG files through a torch DataLoader.

Both paths start from the same PNG bytes: the 10k-image Fashion-MNIST test split is ingested
with `xferlib.data.ingest.ingest` (IDX -> validated RGB PNGs in content-addressed shards), and
each stored image's bytes are also written out as one loose `.png` file.
- "shard": `load_imageset` (one read per shard, PIL decode per image, one uint8 tensor) then the
  backbone's `Preprocess` per batch of 64 (resize to --image-size, normalise): what xfer does.
- "loose_wK": a map-style Dataset (PIL open + RGB per file, torchvision Resize + ToTensor +
  Normalize) in a `DataLoader(batch_size=64, num_workers=K)`, K in 0/1/2: the usual way.
Repetitions alternate; medians. Then the training step's own rate (EfficientNet-Lite0, the demo
backbone, at --image-size, xfer's runtime) says whether the loop could wait on data.

    .venv/bin/python bench/data_path.py [--images 10000] [--image-size 64] [--reps 3] [--threads 1]

The data passes run with --threads torch threads (default 1, as each DataLoader worker does): on
this oversubscribed 2-core machine, 2 threads made `Preprocess` on a 64-image batch 2-4x slower
(OpenMP barrier waits while the other core is busy). The train step keeps torch's default.

Writes bench/results/data_path.json: "ratio" = shard img/s / best loose img/s (any K).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from common import interleaved, machine, median, quiet_env, sampling_load, spread, write_result
from PIL import Image

from xferlib.config import DataParams
from xferlib.data.fashion import FASHION_ROOT
from xferlib.data.imageset import Preprocess
from xferlib.data.ingest import ingest
from xferlib.data.shards import load_imageset, read_image_bytes, read_manifest

BATCH = 64
WORKERS = (0, 1, 2)


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
        for start in range(0, len(images), BATCH):
            pre(images[start : start + BATCH])
    return time.perf_counter() - t0


def loose_pass(paths: list[Path], pre: Preprocess, workers: int) -> float:
    t0 = time.perf_counter()
    loader = torch.utils.data.DataLoader(
        LooseFiles(paths, pre), batch_size=BATCH, num_workers=workers
    )
    for _ in loader:
        pass
    return time.perf_counter() - t0


def train_rate(image_size: int, steps: int = 6) -> dict[str, float]:
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=10_000)
    ap.add_argument("--image-size", type=int, default=64)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1, help="torch threads for the data passes")
    args = ap.parse_args()
    train_threads = torch.get_num_threads()
    quiet_env()
    pre = Preprocess(args.image_size, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))  # Lite0's transform
    with tempfile.TemporaryDirectory(prefix="xfer-bench-data-") as tmp, sampling_load() as load:
        t0 = time.perf_counter()
        dataset, paths = prepare(Path(tmp), args.images)
        setup_s = time.perf_counter() - t0
        n = len(paths)
        runs = {"shard": lambda: shard_pass(dataset, pre, n),
                "shard_decode_only": lambda: shard_pass(dataset, pre, n, decode_only=True)}  # fmt: skip
        runs |= {f"loose_w{k}": (lambda k=k: loose_pass(paths, pre, k)) for k in WORKERS}
        torch.set_num_threads(args.threads)  # DataLoader workers run 1 thread each; match them
        secs = interleaved(runs, args.reps)
        torch.set_num_threads(train_threads)
        train = train_rate(args.image_size) | {"threads": train_threads}
    rates = {name: n / median(s) for name, s in secs.items()}
    best_loose = max((k for k in rates if k.startswith("loose")), key=rates.__getitem__)
    result = {
        "ratio": round(rates["shard"] / rates[best_loose], 3),
        "what": "img/s decode + transform: xfer shards (load_imageset + Preprocess) / best loose-PNG DataLoader",
        "images": n,
        "img_per_s": rates,
        "best_loose": best_loose,
        "ratio_vs": {k: rates["shard"] / v for k, v in rates.items() if k.startswith("loose")},
        "seconds": {k: spread(v) for k, v in secs.items()},
        "train_step": train,
        "data_over_train": rates["shard"] / train["train_img_per_s"],
        "setup_ingest_and_export_s": setup_s,
        "config": vars(args) | {"batch": BATCH, "workers": list(WORKERS)},
        "load_average_1m": load.summary(),
        "machine": machine(),
    }
    path = write_result("data_path", result)
    print(f"shard img/s / loose img/s ({best_loose}): {result['ratio']:.2f}; wrote {path}")


if __name__ == "__main__":
    main()
