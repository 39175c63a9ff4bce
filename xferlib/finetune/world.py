"""What `fine_tune` needs to know about data-parallel training (torchrun / DDP), and nothing else.

`World.current()` reads the initialised default process group (a world of one without it), so
`fine_tune` is DDP-aware with no new argument. Under DDP every rank draws the same (seed, epoch)
permutation and cuts the same *global* batches; rank r takes positions r::world of each, which is
what `DistributedSampler` + a per-rank batch of batch_size/world yields. Each rank's loss is scaled
by its share of the global batch, so DDP's gradient average equals the single-process gradient
of that global batch, and BatchNorm statistics are synchronised across ranks (below), which makes
2 processes train to the weights of 1 (up to float summation order) when augment is off.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from xferlib.models import Classifier


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1

    @staticmethod
    def current() -> World:
        """The default process group's rank and size; a world of one when none is initialised."""
        if dist.is_available() and dist.is_initialized():
            return World(dist.get_rank(), dist.get_world_size())
        return World()

    @property
    def is_main(self) -> bool:
        """Rank 0: the only rank that writes checkpoints, caches, models and logs."""
        return self.rank == 0

    def check_batch(self, batch_size: int) -> None:
        if batch_size % self.size:
            raise ValueError(
                f"finetune.batch_size={batch_size} is not divisible by {self.size} processes; "
                f"use a multiple of {self.size} (it is the global batch, split across ranks)"
            )

    def shard(self, idx: torch.Tensor) -> torch.Tensor:
        """This rank's part of a global batch (positions rank::size)."""
        return idx if self.size == 1 else idx[self.rank :: self.size]

    def loss_scale(self, local: int, global_: int) -> float:
        """Factor that turns a rank's mean loss into its share of the global batch mean (DDP
        averages gradients over ranks, so it multiplies by size)."""
        return 1.0 if self.size == 1 else local * self.size / global_

    def sum(self, *values: float) -> list[float]:
        """Element-wise sum over ranks (float64 on the CPU: gloo and NCCL both take it)."""
        if self.size == 1:
            return list(values)
        t = torch.tensor(values, dtype=torch.float64, device=_collective_device())
        dist.all_reduce(t)
        return t.tolist()

    def augment_generator(self, gen: torch.Generator, seed: int) -> torch.Generator:
        """Rank 0 keeps the shared generator; other ranks get their own stream (and dropout seed)
        so their augmentations are not copies of rank 0's."""
        if self.rank == 0:
            return gen
        torch.manual_seed(seed + 7919 * self.rank)
        return torch.Generator().manual_seed(seed + 7919 * self.rank)


def _collective_device() -> torch.device:
    nccl = dist.get_backend() == "nccl"
    return torch.device("cuda", torch.cuda.current_device()) if nccl else torch.device("cpu")


def ddp_forward(
    model: Classifier, compile_: bool, device: torch.device
) -> Callable[[torch.Tensor], torch.Tensor]:
    """The model wrapped in DistributedDataParallel over its currently trainable parameters.

    Frozen blocks have requires_grad=False here, so DDP never waits for their gradients; the
    caller re-wraps when the trainable set changes (gradual unfreezing, lp_ft)."""
    from torch.nn.parallel import DistributedDataParallel as DDP

    ids = [torch.cuda.current_device()] if device.type == "cuda" else None  # set per local rank
    # BatchNorm buffers agree across ranks already (statistics are synchronised): no per-step sync
    wrapped = DDP(model, device_ids=ids, forward_sync_buffers=False)
    return torch.compile(wrapped) if compile_ else wrapped


class _AllReduce(torch.autograd.Function):
    """A summing all-reduce whose gradient is the summed gradient of every rank's use of it."""

    @staticmethod
    def forward(ctx: Any, t: torch.Tensor) -> torch.Tensor:
        out = t.clone()
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)
        return grad


class _GlooSyncBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm whose training statistics span all ranks, for CPU tensors (torch's SyncBatchNorm
    is GPU-only). Differentiable all-reduces carry the statistics' gradients back to every rank."""

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2D input (N, C, ...), got {input.dim()}D")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return super().forward(x)
        dims = [0, *range(2, x.dim())]
        n = torch.tensor(x.numel() / x.shape[1], dtype=x.dtype, device=x.device)  # per channel
        dist.all_reduce(n)
        mean = _AllReduce.apply(x.sum(dims)) / n
        shape = [1, -1] + [1] * (x.dim() - 2)
        var = _AllReduce.apply(((x - mean.view(shape)) ** 2).sum(dims)) / n
        self._track(mean.detach(), var.detach() * n / max(float(n) - 1, 1.0))
        y = (x - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y

    @torch.no_grad()
    def _track(self, mean: torch.Tensor, unbiased_var: torch.Tensor) -> None:
        if not self.track_running_stats or self.running_mean is None:
            return
        tracked = self.num_batches_tracked
        assert tracked is not None  # track_running_stats=True allocates it
        tracked.add_(1)
        m = self.momentum if self.momentum is not None else 1.0 / float(tracked)
        self.running_mean.mul_(1 - m).add_(mean, alpha=m)
        self.running_var.mul_(1 - m).add_(unbiased_var, alpha=m)  # type: ignore[union-attr]


def sync_batchnorm(model: nn.Module, device: torch.device) -> Callable[[], None]:
    """Swap every BatchNorm for a cross-rank one (same parameters and buffers); returns undo."""
    cls = nn.SyncBatchNorm if device.type == "cuda" else _GlooSyncBatchNorm
    swapped: list[tuple[nn.Module, str, nn.Module]] = []
    for parent in list(model.modules()):
        for name, child in parent.named_children():
            if isinstance(child, nn.modules.batchnorm._BatchNorm) and not isinstance(
                child, nn.SyncBatchNorm | _GlooSyncBatchNorm
            ):
                synced = _swap(child, cls)
                setattr(parent, name, synced)
                swapped.append((parent, name, child))

    def undo() -> None:
        for parent, name, original in swapped:
            synced = getattr(parent, name)
            original.train(synced.training)
            setattr(parent, name, original)

    return undo


def _swap(bn: nn.Module, cls: type[nn.Module]) -> nn.Module:
    """A `cls` instance sharing `bn`'s Parameter and buffer objects (the optimizer keeps them)."""
    new = cls(bn.num_features, bn.eps, bn.momentum, bn.affine, bn.track_running_stats)  # type: ignore[call-arg]
    new._parameters = bn._parameters
    new._buffers = bn._buffers
    new.train(bn.training)
    return new
