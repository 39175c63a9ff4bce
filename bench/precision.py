"""CPU/GPU speed of fp32 vs channels_last vs bf16 autocast + channels_last, per backbone.

For each backbone (random init; speed does not depend on the weights) and each mode, two timed
calls: a train call (--steps steps of forward, backward and AdamW step, all parameters trainable,
batch --batch-size at --image-size) and an eval call (--steps forward passes under no_grad).
Method: one warm-up round (allocator, oneDNN kernel selection), then --pairs rounds of the six
calls in listed order then reversed (`common.interleaved_rounds`); each ratio = fp32 seconds /
mode seconds for the same call in the same round (= mode img/s / fp32 img/s), median with min and
max. This is how `Backbone.cpu_bf16_ok` is decided.

    .venv/bin/python bench/precision.py              # ~3 min on an idle 2-core box (estimate)
    .venv/bin/python bench/precision.py --backbones mobilenet_v3_large efficientnet_b0 --image-size 64
    .venv/bin/python bench/precision.py --quick --out /tmp/precision.json   # smoke, < 1 min

Default: efficientnet_lite0 and resnet18, 96 px, batch 32, 3 steps a call (Lite0's fp32 train
call is most of the time). --quick: resnet18 at 32 px, batch 8, 1 step. Writes
bench/results/precision.json.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from common import (
    interleaved_rounds,
    machine,
    pair_up,
    sampling_load,
    set_torch_threads,
    spread,
    start,
    write_result,
)

from xferlib.finetune.runtime import Runtime
from xferlib.models import Classifier, create_backbone

MODES = {
    "fp32": ("fp32", False),
    "channels_last": ("fp32", True),
    "bf16_channels_last": ("bf16", True),
}
KINDS = ("train", "eval")


def _model(name: str, size: int, channels_last: bool) -> Classifier:
    torch.manual_seed(0)
    model = Classifier(create_backbone(name, pretrained=False, image_size=size), 10)
    return model.to(memory_format=torch.channels_last) if channels_last else model


def _time_train(
    model: Classifier, rt: Runtime, x: torch.Tensor, y: torch.Tensor, steps: int
) -> float:
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    model.train()
    t0 = time.perf_counter()
    for _ in range(steps):
        with rt.autocast():
            logits = model(rt.layout(x))
        loss = F.cross_entropy(logits.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return time.perf_counter() - t0


@torch.no_grad()
def _time_eval(model: Classifier, rt: Runtime, x: torch.Tensor, steps: int) -> float:
    model.eval()
    t0 = time.perf_counter()
    for _ in range(steps):
        with rt.autocast():
            model(rt.layout(x))
    return time.perf_counter() - t0


def runs_for(name: str, size: int, batch: int, steps: int) -> dict[str, Callable[[], float]]:
    """Six timed calls for one backbone: `<mode>/train` and `<mode>/eval`, each in seconds."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    x = torch.randn(batch, 3, size, size, device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    runs: dict[str, Callable[[], float]] = {}
    for mode, (precision, cl) in MODES.items():
        model, rt = _model(name, size, cl).to(device), Runtime(device, precision, cl)
        runs[f"{mode}/train"] = partial(_time_train, model, rt, x, y, steps)
        runs[f"{mode}/eval"] = partial(_time_eval, model, rt, x, steps)
    return runs


def measure(name: str, args: argparse.Namespace) -> dict[str, Any]:
    """Seconds per call and each mode's paired ratio to fp32, for one backbone."""
    secs = interleaved_rounds(
        runs_for(name, args.image_size, args.batch_size, args.steps), args.pairs
    )
    imgs = args.steps * args.batch_size
    return {
        "seconds": {k: spread(v) for k, v in secs.items()},
        "img_per_s_median": {k: imgs / spread(v)["median"] for k, v in secs.items()},
        "speedup_vs_fp32": {
            mode: {kind: pair_up(secs, f"fp32/{kind}", f"{mode}/{kind}") for kind in KINDS}
            for mode in MODES
            if mode != "fp32"
        },
    }


def main() -> None:
    start()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backbones", nargs="+", default=["efficientnet_lite0", "resnet18"])
    ap.add_argument("--image-size", type=int, default=96)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--steps", type=int, default=3, help="steps per timed call")
    ap.add_argument("--pairs", type=int, default=5, help="interleaved rounds (>= 5)")
    ap.add_argument("--quick", action="store_true", help="smoke run: resnet18, 32 px, batch 8")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--out", type=Path, default=None, help="write here, not bench/results/")
    args = ap.parse_args()
    set_torch_threads(args.threads, args.quick)
    if args.quick:
        args.backbones, args.image_size, args.batch_size, args.steps = ["resnet18"], 32, 8, 1
    with sampling_load() as load:
        backbones = {name: measure(name, args) for name in args.backbones}
    result = {
        "what": "train and eval img/s of channels_last and bf16 autocast + channels_last "
        "relative to fp32 (fp32 seconds / mode seconds, same call, same round)",
        "method": "one warm-up round, then `pairs` rounds of the six calls (3 modes x train/eval) "
        "in listed order then reversed; ratio per round; median, min, max",
        "device": "cuda" if torch.cuda.is_available() else "cpu",
        "threads": torch.get_num_threads(),
        "image_size": args.image_size,
        "batch_size": args.batch_size,
        "steps_per_call": args.steps,
        "quick": args.quick,
        "pairs": args.pairs,
        "backbones": backbones,
        "load_average_1m": load.summary(),
        "machine": machine(),
    }
    write_result("precision", result, args.out)


if __name__ == "__main__":
    main()
