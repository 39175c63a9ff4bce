"""What xfer's training loop costs over a bare PyTorch loop doing the same arithmetic.

Three runs of the same training (same random-init model, uint8 Fashion-MNIST images, batch size,
AdamW, precision and memory format, seeded shuffling, augmentation off, a val pass per epoch):
- "xfer": `xferlib.finetune.fine_tune` exactly as `xfer train` drives it: strategy `full`, a
  `checkpoint_dir` (last.pt written every epoch), best-weights tracking on the val set, and the
  per-epoch `on_epoch` logger of `xferlib.release.run` writing to a real `Tracker` on a temp
  sqlite store (the run is created untimed; its final close is timed).
- "xfer_no_checkpoint": the same `fine_tune` call without `checkpoint_dir` and `on_epoch`: xfer's
  loop alone. It replaces the old profile-based estimate with a measured pair.
- "bare": the loop a person would write by hand: per-batch preprocessing (resize to
  --image-size + normalise), the same val pass; no checkpoint, no logging.
Method: one warm-up round, then --pairs rounds of the three in listed order then reversed
(`common.interleaved_rounds`). Ratios (per round; median, min, max) are steps/s relative to bare =
bare seconds / xfer seconds; the headline `xfer_over_bare` is reported against its target 0.97
(`target`, `met` = median >= target).

    .venv/bin/python bench/loop_overhead.py          # ~3 min on an idle 2-core box (estimate)
    .venv/bin/python bench/loop_overhead.py --quick --out /tmp/loop_overhead.json   # smoke, < 1 min

Default: resnet18, 64 px, 384 train + 256 val images, 2 epochs, batch 32 (24 steps a run,
18 runs of a few seconds each when idle; 10-30 s each at load average 11). --quick: the "tiny"
test backbone, 96 train + 64 val images at 32 px (6 steps a run): it checks the plumbing only. Writes
bench/results/loop_overhead.json. The old `--profile` (a cProfile attribution with no baseline
behind it) is gone.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import math
import shutil
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from common import (
    interleaved_rounds,
    machine,
    pair_up,
    quiet_env,
    sampling_load,
    set_torch_threads,
    spread,
    start,
    write_result,
)

from xferlib.config import FinetuneParams
from xferlib.data.fashion import load_fashion_mnist
from xferlib.data.imageset import ImageSet
from xferlib.finetune import fine_tune, resolve_runtime
from xferlib.finetune.runtime import Runtime, place_model
from xferlib.models import Classifier, create_backbone
from xferlib.registry.runs import Tracker
from xferlib.release.run import epoch_logger  # the exact callback `xfer train` passes


def fashion_set(n: int, offset: int = 0) -> ImageSet:
    """`n` Fashion-MNIST train images (28 px grey -> uint8 RGB) with labels."""
    x, y = load_fashion_mnist(split="train", limit=offset + n)
    images = torch.from_numpy(x[offset:]).unsqueeze(1).expand(-1, 3, -1, -1).contiguous()
    return ImageSet(images, torch.from_numpy(y[offset:]), [])


def bare_loop(
    model: Classifier, train: ImageSet, val: ImageSet, cfg: FinetuneParams, rt: Runtime
) -> int:
    """The hand-written baseline; returns the number of optimizer steps taken."""
    pre, dev = model.preprocess, rt.device
    mean = torch.tensor(pre.mean, device=dev).view(1, 3, 1, 1)
    std = torch.tensor(pre.std, device=dev).view(1, 3, 1, 1)

    def prep(u8: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(rt.to_device(u8).float() / 255.0, size=(pre.image_size,) * 2,
                          mode="bilinear", antialias=True, align_corners=False)  # fmt: skip
        return rt.layout((x - mean) / std)

    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr_backbone, weight_decay=cfg.weight_decay)
    steps, gen = 0, torch.Generator().manual_seed(cfg.seed)
    for _ in range(cfg.epochs):
        model.train()
        for idx in torch.randperm(len(train), generator=gen).split(cfg.batch_size):
            with rt.autocast():
                logits = model(prep(train.images[idx]))
            loss = F.cross_entropy(logits.float(), rt.to_device(train.labels[idx]))  # type: ignore[index]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            steps += 1
        model.eval()
        with torch.no_grad(), rt.autocast():
            correct = sum(int((model(prep(val.images[s : s + 256])).argmax(-1).cpu() == val.labels[s : s + 256]).sum())  # type: ignore[index]
                          for s in range(0, len(val), 256))  # fmt: skip
        _ = correct / len(val)
    return steps


class Bench:
    """Holds the template model, data and a tracking store; each call times one fresh run."""

    def __init__(self, args: argparse.Namespace, root: Path) -> None:
        torch.manual_seed(0)
        backbone = create_backbone(args.backbone, pretrained=False, image_size=args.image_size)
        self.template = Classifier(backbone, 10)
        self.train, self.val = fashion_set(args.images), fashion_set(args.val, offset=args.images)
        self.cfg = FinetuneParams(strategy="full", epochs=args.epochs, batch_size=args.batch_size,
                                  augment=False, early_stopping_patience=args.epochs, device=args.device)  # fmt: skip
        self.rt = resolve_runtime(self.cfg, self.template)
        self.root, self.runs, self.checkpoint_mb = root, 0, 0.0
        self.uri = f"sqlite:///{root / 'mlflow.db'}"
        Tracker.start(
            self.uri, "bench-loop", "warm-db", artifact_root=root / "art"
        ).close()  # migrations
        self.steps = math.ceil(len(self.train) / args.batch_size) * args.epochs

    def fresh(self) -> Classifier:
        return copy.deepcopy(self.template)

    def xfer(self) -> float:
        """Seconds of one fine_tune call with checkpoints + tracker (run creation not timed)."""
        model, self.runs = self.fresh(), self.runs + 1
        run = Tracker.start(
            self.uri, "bench-loop", f"xfer-{self.runs}", artifact_root=self.root / "art"
        )
        ckpt = self.root / f"ckpt-{self.runs}"
        t0 = time.perf_counter()
        with run:
            fine_tune(model, self.train, self.val, self.cfg,
                      checkpoint_dir=ckpt, on_epoch=epoch_logger(run))  # fmt: skip
        elapsed = time.perf_counter() - t0
        self.checkpoint_mb = (ckpt / "last.pt").stat().st_size / 1e6
        shutil.rmtree(ckpt)  # untimed: ~180 MB a run for resnet18
        return elapsed

    def xfer_no_checkpoint(self) -> float:
        """Seconds of the same fine_tune call without checkpoint_dir and on_epoch."""
        model = self.fresh()
        t0 = time.perf_counter()
        fine_tune(model, self.train, self.val, self.cfg)
        return time.perf_counter() - t0

    def bare(self) -> float:
        model = self.fresh()
        t0 = time.perf_counter()
        place_model(model, self.rt)
        bare_loop(model, self.train, self.val, self.cfg, self.rt)
        return time.perf_counter() - t0


def main() -> None:
    start()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backbone", default="resnet18")
    ap.add_argument("--image-size", type=int, default=64)
    ap.add_argument("--images", type=int, default=384, help="train images per epoch")
    ap.add_argument("--val", type=int, default=256)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--pairs", type=int, default=5, help="interleaved rounds (>= 5)")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    ap.add_argument(
        "--quick", action="store_true", help="smoke run: tiny backbone, 96 + 64 images, 32 px"
    )
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--out", type=Path, default=None, help="write here, not bench/results/")
    args = ap.parse_args()
    set_torch_threads(args.threads, args.quick)
    if args.quick:
        args.backbone, args.images, args.val, args.image_size = "tiny", 96, 64, 32
    quiet_env()
    with tempfile.TemporaryDirectory(prefix="xfer-bench-loop-") as tmp, sampling_load() as load:
        bench = Bench(args, Path(tmp))
        runs = {
            "bare": bench.bare,
            "xfer": bench.xfer,
            "xfer_no_checkpoint": bench.xfer_no_checkpoint,
        }
        secs = interleaved_rounds(runs, args.pairs)
    headline = pair_up(secs, "bare", "xfer")
    result = {
        "what": "optimizer steps/s of fine_tune relative to a bare loop doing the same training "
        "and val passes (bare seconds / xfer seconds)",
        "method": "one warm-up round, then `pairs` rounds of bare, xfer, xfer_no_checkpoint in "
        "listed order then reversed; ratio per round; median, min, max",
        "runs": {
            "bare": "hand-written loop + the same val pass per epoch; no checkpoint, no logging",
            "xfer": "fine_tune as `xfer train` calls it: checkpoint_dir (last.pt every epoch), "
            "best-weights tracking, the per-epoch Tracker logger (sqlite), close timed",
            "xfer_no_checkpoint": "the same fine_tune call without checkpoint_dir and on_epoch",
        },
        "target": 0.97,
        "met": headline["ratio"]["median"] >= 0.97,
        "xfer_over_bare": headline,
        "xfer_no_checkpoint_over_bare": pair_up(secs, "bare", "xfer_no_checkpoint"),
        "xfer_over_xfer_no_checkpoint": pair_up(secs, "xfer_no_checkpoint", "xfer"),
        "steps_per_run": bench.steps,
        "seconds_per_run": {k: spread(v) for k, v in secs.items()},
        "checkpoint_mb": bench.checkpoint_mb,
        "quick": args.quick,
        "pairs": args.pairs,
        "config": {
            **vars(args),
            "precision": bench.rt.precision,
            "channels_last": bench.rt.channels_last,
            "cfg": dataclasses.asdict(bench.cfg),
        },
        "load_average_1m": load.summary(),
        "machine": machine(),
    }
    write_result("loop_overhead", result, args.out)


if __name__ == "__main__":
    main()
