"""Linear probe: recompute frozen-backbone features every epoch vs compute them once and cache.

Same backbone (pretrained EfficientNet-Lite0), images (--per-class labelled Fashion-MNIST train
images per class), head, optimizer, batch size and epochs in every run:
- "recompute": every epoch re-runs the frozen backbone over the train images, then trains the
  head on them (what a naive loop does).
- "cached_cold": `fine_tune(strategy="linear_probe", feature_cache=<empty dir>)`: one backbone
  pass (included in its time), then the head trains on the cached matrix.
- "cached_warm": the same call on a cache that already holds the features (no backbone pass).
Method: one warm-up round (it also fills the warm cache), then --pairs rounds of the three in
listed order then reversed (`common.interleaved_rounds`); each ratio = recompute seconds /
cached seconds per round, median with min and max. The gain grows with the epochs (one backbone
pass instead of E): it says so only for the --epochs measured.

    .venv/bin/python bench/feature_cache.py          # ~3 min on an idle 2-core box (estimate)
    .venv/bin/python bench/feature_cache.py --quick --out /tmp/feature_cache.json   # smoke, ~1 min

Default: 50 images per class (500), 64 px, 10 epochs; trimmed from 100 per class so that the six
recompute runs (10 backbone passes each) fit in a few minutes. --quick: 5 per class, 32 px,
3 epochs. Writes bench/results/feature_cache.json.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from itertools import count
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
from xferlib.finetune import extract_features, fine_tune, resolve_runtime
from xferlib.models import Classifier, create_backbone

POOL = 5000  # the first train images, from which --per-class are drawn


def few_labels(per_class: int, seed: int = 0) -> ImageSet:
    """`per_class` images of each class from the first POOL train images (grey -> 3 channels)."""
    x, y = load_fashion_mnist(split="train", limit=POOL)
    images = torch.from_numpy(x).unsqueeze(1).expand(-1, 3, -1, -1).contiguous()
    labels = torch.from_numpy(y).long()
    g = torch.Generator().manual_seed(seed)
    picks = [
        idx[torch.randperm(len(idx), generator=g)[:per_class]]
        for idx in (torch.nonzero(labels == c).flatten() for c in range(10))
    ]
    keep = torch.cat(picks)
    return ImageSet(images[keep], labels[keep], [f"fmnist-train-{int(i)}" for i in keep])


class Bench:
    def __init__(self, args: argparse.Namespace, root: Path) -> None:
        self.args, self.root = args, root
        self.train = few_labels(args.per_class)
        self.cfg = FinetuneParams(
            strategy="linear_probe", epochs=args.epochs, batch_size=64, device="auto"
        )
        self.precision = resolve_runtime(self.cfg, self.model()).precision
        self.cold = count()

    def model(self) -> Classifier:
        torch.manual_seed(0)
        return Classifier(create_backbone(self.args.backbone, image_size=self.args.image_size), 10)

    def recompute(self) -> float:
        """Seconds for `epochs` epochs that each re-run the frozen backbone, then train the head."""
        model, cfg = self.model(), self.cfg
        rt = resolve_runtime(cfg, model)
        model.to(rt.device)
        head = model.head.parameters()
        opt = torch.optim.AdamW(head, lr=cfg.lr_head, weight_decay=cfg.weight_decay)
        labels = self.train.labels.to(rt.device)  # type: ignore[union-attr]
        t0 = time.perf_counter()
        for _ in range(cfg.epochs):
            feats = extract_features(model, self.train, runtime=rt).to(rt.device)
            for idx in torch.randperm(len(self.train)).split(cfg.batch_size):
                loss = F.cross_entropy(model.head(feats[idx]), labels[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
        return time.perf_counter() - t0

    def cached(self, cache: Path) -> float:
        model = self.model()
        t0 = time.perf_counter()
        fine_tune(model, self.train, None, self.cfg, feature_cache=cache)
        return time.perf_counter() - t0

    def runs(self) -> dict[str, Callable[[], float]]:
        return {
            "recompute": self.recompute,
            "cached_cold": lambda: self.cached(self.root / f"cold-{next(self.cold)}"),
            "cached_warm": lambda: self.cached(self.root / "warm"),
        }


def main() -> None:
    start()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backbone", default="efficientnet_lite0")
    ap.add_argument("--image-size", type=int, default=64)
    ap.add_argument("--per-class", type=int, default=50)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--pairs", type=int, default=5, help="interleaved rounds (>= 5)")
    ap.add_argument("--quick", action="store_true", help="smoke run: 5 per class, 32 px, 3 epochs")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--out", type=Path, default=None, help="write here, not bench/results/")
    args = ap.parse_args()
    set_torch_threads(args.threads, args.quick)
    if args.quick:
        args.per_class, args.image_size, args.epochs = 5, 32, 3
    quiet_env()
    with tempfile.TemporaryDirectory(prefix="xfer-bench-cache-") as tmp, sampling_load() as load:
        bench = Bench(args, Path(tmp))
        secs = interleaved_rounds(bench.runs(), args.pairs)
    result = {
        "what": "linear probe wall seconds: recompute frozen features every epoch vs "
        "fine_tune(linear_probe) with the feature cache, cold and warm",
        "method": "one warm-up round (fills the warm cache), then `pairs` rounds of recompute, "
        "cached_cold, cached_warm in listed order then reversed; ratio per round; median, min, max",
        "backbone": args.backbone,
        "image_size": args.image_size,
        "images": len(bench.train),
        "epochs": args.epochs,
        "precision": bench.precision,
        "threads": torch.get_num_threads(),
        "quick": args.quick,
        "pairs": args.pairs,
        "seconds": {k: spread(v) for k, v in secs.items()},
        "recompute_over_cached_cold": pair_up(secs, "recompute", "cached_cold"),
        "recompute_over_cached_warm": pair_up(secs, "recompute", "cached_warm"),
        "load_average_1m": load.summary(),
        "machine": machine(),
    }
    write_result("feature_cache", result, args.out)


if __name__ == "__main__":
    main()
