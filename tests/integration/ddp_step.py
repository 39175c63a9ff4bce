"""Run by tests/integration/test_ddp.py under torchrun: one global batch's gradient on N DDP ranks
(the batch split r::N, cross-rank BatchNorm, loss scaled by each rank's share) against the same
batch in one process. Rank 0 prints the largest absolute gradient difference as JSON."""

from __future__ import annotations

import json

import torch
import torch.distributed as dist
import torch.nn.functional as F

from xferlib.finetune.world import World, ddp_forward, sync_batchnorm
from xferlib.models import Classifier, create_backbone


def _model() -> Classifier:
    torch.manual_seed(0)
    return Classifier(create_backbone("tiny", pretrained=False, weights=None, image_size=28), 10)


def main() -> None:
    x, y = (
        torch.randn(32, 3, 28, 28, generator=torch.Generator().manual_seed(1)),
        torch.arange(32) % 10,
    )
    ref, model = _model(), _model()
    ref.train()
    F.cross_entropy(ref(x), y).backward()
    dist.init_process_group("gloo")
    world = World.current()
    undo = sync_batchnorm(model, torch.device("cpu"))
    model.train()
    idx = world.shard(torch.arange(len(x)))
    ddp = ddp_forward(model, False, torch.device("cpu"))  # keep it: its hooks live with it
    loss = F.cross_entropy(ddp(x[idx]), y[idx])
    (loss * world.loss_scale(len(idx), len(x))).backward()
    undo()
    if world.is_main:
        grads = zip(model.parameters(), ref.parameters(), strict=True)
        diff = max((p.grad - q.grad).abs().max().item() for p, q in grads)  # type: ignore[operator]
        scale = max(q.grad.abs().max().item() for q in ref.parameters())  # type: ignore[union-attr]
        state = zip(model.state_dict().values(), ref.state_dict().values(), strict=True)
        buffers = max((a.double() - b.double()).abs().max().item() for a, b in state)
        print(json.dumps({"grad_diff": diff, "grad_scale": scale, "state_diff": buffers}))
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
