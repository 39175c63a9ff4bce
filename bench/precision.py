"""CPU/GPU speed of fp32 vs channels_last vs bf16 autocast + channels_last, per backbone.

Train step (forward, backward, AdamW step, all parameters trainable) and eval forward, measured
in the same run and reported as a ratio to fp32, which is how `Backbone.cpu_bf16_ok` was decided.
Modes are interleaved and repeated, and the median kept: the CPU is shared and noisy.

    .venv/bin/python bench/precision.py --backbones efficientnet_lite0 resnet18 --image-size 96
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from xferlib.finetune.runtime import Runtime
from xferlib.models import Classifier, create_backbone

MODES = {
    "fp32": ("fp32", False),
    "channels_last": ("fp32", True),
    "bf16_channels_last": ("bf16", True),
}


def _model(name: str, size: int, channels_last: bool) -> Classifier:
    torch.manual_seed(0)
    model = Classifier(create_backbone(name, pretrained=False, image_size=size), 10)
    return model.to(memory_format=torch.channels_last) if channels_last else model


def _time_train(
    model: Classifier, rt: Runtime, x: torch.Tensor, y: torch.Tensor, steps: int
) -> float:
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    model.train()
    start = time.perf_counter()
    for _ in range(steps):
        with rt.autocast():
            logits = model(rt.layout(x))
        loss = F.cross_entropy(logits.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return steps * len(x) / (time.perf_counter() - start)


@torch.no_grad()
def _time_eval(model: Classifier, rt: Runtime, x: torch.Tensor, steps: int) -> float:
    model.eval()
    start = time.perf_counter()
    for _ in range(steps):
        with rt.autocast():
            model(rt.layout(x))
    return steps * len(x) / (time.perf_counter() - start)


def measure(
    name: str, size: int, batch: int, steps: int, repeats: int
) -> dict[str, dict[str, float]]:
    """Median train/eval images per second for each mode of one backbone."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    x = torch.randn(batch, 3, size, size, device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    samples: dict[str, dict[str, list[float]]] = {m: {"train": [], "eval": []} for m in MODES}
    models = {m: _model(name, size, cl).to(device) for m, (_, cl) in MODES.items()}
    for rep in range(repeats + 1):  # repeat 0 is warm-up (allocator, oneDNN kernel selection)
        for mode, (precision, cl) in MODES.items():
            rt = Runtime(device, precision, cl)
            train = _time_train(models[mode], rt, x, y, steps)
            ev = _time_eval(models[mode], rt, x, steps)
            if rep:
                samples[mode]["train"].append(train)
                samples[mode]["eval"].append(ev)
    return {m: {k: statistics.median(v) for k, v in s.items()} for m, s in samples.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backbones", nargs="+", default=["efficientnet_lite0", "resnet18"])
    ap.add_argument("--image-size", type=int, default=96)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=Path("bench/results/precision.json"))
    args = ap.parse_args()
    results, ratio = {}, {}
    for name in args.backbones:
        r = measure(name, args.image_size, args.batch_size, args.steps, args.repeats)
        results[name] = r
        ratio[name] = {m: {k: r[m][k] / r["fp32"][k] for k in ("train", "eval")} for m in MODES}
        print(name, json.dumps({m: {k: round(v, 1) for k, v in d.items()} for m, d in r.items()}))
        print(
            "  ratio vs fp32",
            json.dumps({m: {k: round(v, 2) for k, v in d.items()} for m, d in ratio[name].items()}),
        )
    out = {
        "what": "images/s (median of repeats) and ratio to fp32 in the same run",
        "device": "cuda" if torch.cuda.is_available() else "cpu",
        "threads": torch.get_num_threads(),
        "image_size": args.image_size,
        "batch_size": args.batch_size,
        "img_per_s": results,
        "ratio": ratio,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
