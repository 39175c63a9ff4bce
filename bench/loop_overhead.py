"""What xfer's training loop costs over a bare PyTorch loop doing the same arithmetic.

"xfer" is `xferlib.finetune.fine_tune` exactly as `xfer train` drives it: strategy `full`, a
`checkpoint_dir` (last.pt written every epoch), best-weights tracking on a val set, and the
per-epoch `on_epoch` logger of `xferlib.stages.training` writing to a real `Tracker` on a temp
sqlite store (the run is created outside the timing, its final close is charged to xfer).
"bare" is the loop a person would write by hand: the same model (random-init resnet18), the
same uint8 images, per-batch preprocessing (resize to --image-size + normalise), batch size,
AdamW, the runtime's precision and memory format, and the same per-epoch val pass; no
checkpoint, no logging. Both shuffle with a seeded generator; augmentation is off in both.
Repetitions alternate; the ratio is of medians.

    .venv/bin/python bench/loop_overhead.py [--images 384] [--epochs 2] [--reps 5] [--profile]

Writes bench/results/loop_overhead.json: "ratio" = xfer steps/s / bare steps/s (target >= 0.97).
`--profile` also writes bench/results/loop_overhead.prof.txt (cProfile of one xfer run).
"""

from __future__ import annotations

import argparse
import copy
import cProfile
import dataclasses
import io
import math
import pstats
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from common import (
    RESULTS,
    interleaved,
    machine,
    median,
    quiet_env,
    sampling_load,
    spread,
    write_result,
)

from xferlib.config import FinetuneParams
from xferlib.data.fashion import load_fashion_mnist
from xferlib.data.imageset import ImageSet
from xferlib.finetune import fine_tune, resolve_runtime
from xferlib.finetune.runtime import Runtime, place_model
from xferlib.models import Classifier, create_backbone
from xferlib.stages.training import _epoch_logger  # the exact callback `xfer train` passes
from xferlib.tracking import Tracker


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
        self.root, self.runs = root, 0
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
        t0 = time.perf_counter()
        with run:
            fine_tune(model, self.train, self.val, self.cfg,
                      checkpoint_dir=self.root / f"ckpt-{self.runs}", on_epoch=_epoch_logger(run))  # fmt: skip
        return time.perf_counter() - t0

    def bare(self) -> float:
        model = self.fresh()
        t0 = time.perf_counter()
        place_model(model, self.rt)
        bare_loop(model, self.train, self.val, self.cfg, self.rt)
        return time.perf_counter() - t0


def profile_xfer(bench: Bench, out: Path) -> dict[str, float]:
    """cProfile one xfer run; returns cumulative seconds of the loop's non-training parts."""
    prof = cProfile.Profile()
    prof.enable()
    bench.xfer()
    prof.disable()
    text = io.StringIO()
    stats = pstats.Stats(prof, stream=text).sort_stats("cumulative")
    stats.print_stats(45)
    out.write_text(text.getvalue())
    parts = {"save_checkpoint": "checkpoint.py", "_record": "train.py", "val_accuracy": "epochs.py",
             "log": "training.py", "close": "tracking.py", "image_epoch": "epochs.py"}  # fmt: skip
    found: dict[str, float] = {}
    for (file, _, func), row in stats.stats.items():  # type: ignore[attr-defined]
        if func in parts and file.endswith(parts[func]):
            found[func] = round(found.get(func, 0.0) + row[3], 3)
    return found


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backbone", default="resnet18")
    ap.add_argument("--image-size", type=int, default=64)
    ap.add_argument("--images", type=int, default=384, help="train images per epoch")
    ap.add_argument("--val", type=int, default=256)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args()
    quiet_env()
    with tempfile.TemporaryDirectory(prefix="xfer-bench-loop-") as tmp, sampling_load() as load:
        bench = Bench(args, Path(tmp))
        secs = interleaved({"bare": bench.bare, "xfer": bench.xfer}, args.reps)
        prof = profile_xfer(bench, RESULTS / "loop_overhead.prof.txt") if args.profile else None
        ckpt = bench.root / "ckpt-1" / "last.pt"
        ckpt_mb = ckpt.stat().st_size / 1e6 if ckpt.exists() else None
    bare_s, xfer_s = median(secs["bare"]), median(secs["xfer"])
    result = {
        "ratio": round(bare_s / xfer_s, 4),
        "what": "optimizer steps/s of fine_tune (checkpoint + Tracker + val) / a bare loop (+ same val)",
        "steps_per_run": bench.steps,
        "steps_per_s": {"bare": bench.steps / bare_s, "xfer": bench.steps / xfer_s},
        "seconds_per_run": {"bare": spread(secs["bare"]), "xfer": spread(secs["xfer"])},
        "raw_seconds": secs,  # rounds alternate: pair i is (bare[i], xfer[i])
        "paired_ratio_median": median(
            [b / x for b, x in zip(secs["bare"], secs["xfer"], strict=True)]
        ),
        "overhead_s_per_epoch": (xfer_s - bare_s) / args.epochs,
        "epoch_s_bare": bare_s / args.epochs,
        "checkpoint_mb": ckpt_mb,
        "profile_cumulative_s": prof,
        "config": {
            **vars(args),
            "precision": bench.rt.precision,
            "channels_last": bench.rt.channels_last,
            "strategy": "full",
            "augment": False,
            "cfg": dataclasses.asdict(bench.cfg),
        },  # fmt: skip
        "load_average_1m": load.summary(),
        "machine": machine(),
    }
    path = write_result("loop_overhead", result)
    print(f"xfer steps/s / bare steps/s: {result['ratio']:.3f}; wrote {path}")


if __name__ == "__main__":
    main()
