"""Linear probe: recompute frozen-backbone features every epoch vs compute once and cache.

Same backbone, images, head, optimizer and epochs. "recompute" runs the frozen backbone over the
train images in every epoch (what a naive loop does); "cached" is `fine_tune(strategy=
"linear_probe", feature_cache=...)` on a cold cache (one backbone pass, included in its time);
"cached_warm" is the same call again (cache hit: no backbone pass at all).

    .venv/bin/python bench/feature_cache.py                 # ~1-2 min on 2 shared cores
Writes bench/results/feature_cache.json; "ratio" = recompute seconds / cached (cold) seconds.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from transfer import fashion_imageset, few_labels  # bench/ is on sys.path when run as a script

from xferlib.config import FinetuneParams
from xferlib.data.imageset import ImageSet
from xferlib.finetune import extract_features, fine_tune, resolve_runtime
from xferlib.models import Classifier, create_backbone


def _model(args: argparse.Namespace) -> Classifier:
    torch.manual_seed(0)
    return Classifier(create_backbone(args.backbone, image_size=args.image_size), 10)


def recompute(train: ImageSet, cfg: FinetuneParams, args: argparse.Namespace) -> float:
    """Seconds for `cfg.epochs` epochs that each re-run the frozen backbone, then train the head."""
    model = _model(args)
    rt = resolve_runtime(cfg, model)
    model.to(rt.device)
    opt = torch.optim.AdamW(model.head.parameters(), lr=cfg.lr_head, weight_decay=cfg.weight_decay)
    labels = train.labels.to(rt.device)  # type: ignore[union-attr]
    start = time.perf_counter()
    for _ in range(cfg.epochs):
        feats = extract_features(model, train, runtime=rt).to(rt.device)
        for idx in torch.randperm(len(train)).split(cfg.batch_size):
            loss = F.cross_entropy(model.head(feats[idx]), labels[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return time.perf_counter() - start


def cached(train: ImageSet, cfg: FinetuneParams, args: argparse.Namespace, cache: Path) -> float:
    model = _model(args)
    start = time.perf_counter()
    fine_tune(model, train, None, cfg, feature_cache=cache)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description="linear probe: recompute vs cached features")
    ap.add_argument("--backbone", default="efficientnet_lite0")
    ap.add_argument("--image-size", type=int, default=64)
    ap.add_argument("--per-class", type=int, default=100)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--out", type=Path, default=Path("bench/results/feature_cache.json"))
    args = ap.parse_args()
    train = few_labels(fashion_imageset("train", 5000), args.per_class, seed=0)
    cfg = FinetuneParams(strategy="linear_probe", epochs=args.epochs, batch_size=64, device="auto")
    with tempfile.TemporaryDirectory() as tmp:
        cold = cached(train, cfg, args, Path(tmp))
        warm = cached(train, cfg, args, Path(tmp))
    slow = recompute(train, cfg, args)
    precision = resolve_runtime(cfg, _model(args)).precision
    out = {
        "what": "linear probe wall seconds: recompute features every epoch vs cached once",
        "backbone": args.backbone,
        "image_size": args.image_size,
        "images": len(train),
        "epochs": args.epochs,
        "precision": precision,
        "threads": torch.get_num_threads(),
        "recompute_seconds": round(slow, 2),
        "cached_cold_seconds": round(cold, 2),
        "cached_warm_seconds": round(warm, 2),
        "ratio": round(slow / cold, 2),
        "ratio_warm": round(slow / warm, 2),
    }
    print(json.dumps(out, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
