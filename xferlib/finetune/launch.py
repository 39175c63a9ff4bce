"""torchrun on one node: how many processes, which backend, the worker's command line.

`stages.training.launch` runs `python -m torch.distributed.run --standalone --nproc_per_node N -m
xferlib.distributed_worker ...` built here and waits; every worker runs the same single-process
train stage (rank 0 does all the I/O). Multi-node (`--nnodes`, a rendezvous endpoint) is
torchrun's own business and is not wired here.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from xferlib import env
from xferlib.config import ConfigError, Params

NPROC_ENV = "XFER_TRAIN_NPROC"
WORKER = "xferlib.distributed_worker"


def resolve_nproc(params: Params, nproc: int | None = None) -> int:
    """Processes to train with: the explicit value (CLI flag), else $XFER_TRAIN_NPROC, else params."""
    if nproc:
        value, source = nproc, "--nproc"
    elif raw := env.nproc():
        source = NPROC_ENV
        if not raw.isdigit():
            raise ConfigError(f"{NPROC_ENV}={raw!r} is not a whole number; set it to the GPU count")
        value = int(raw)
    else:
        value, source = params.distributed.nproc, "distributed.nproc"
    if value < 1:
        raise ConfigError(f"{source}={value} must be at least 1 (the processes per node)")
    return value


def resolve_backend(backend: str) -> str:
    """`auto` -> nccl when CUDA is available, else gloo."""
    if backend != "auto":
        return backend
    import torch

    return "nccl" if torch.cuda.is_available() else "gloo"


def check(params: Params, nproc: int) -> None:
    """Refuse, in one line, what N processes cannot do: a linear probe, or a global batch that
    does not split evenly."""
    if nproc < 1:
        raise ConfigError(f"nproc={nproc} must be at least 1 (the processes per node)")
    if nproc > 1 and params.finetune.strategy == "linear_probe":
        # N ranks would each extract the same features and fit the same head: no gain, so no
        # silent single process either.
        raise ConfigError(
            f"finetune.strategy=linear_probe trains a head on cached features and does not "
            f"distribute over {nproc} processes; use --nproc 1 (or unset {NPROC_ENV} / "
            "distributed.nproc), or finetune.strategy full, lp_ft, gradual_unfreeze or scratch"
        )
    batch = params.finetune.batch_size
    if batch % nproc:
        raise ConfigError(
            f"finetune.batch_size={batch} is not divisible by --nproc {nproc}; use a multiple of "
            f"{nproc} (batch_size is the global batch, split across processes)"
        )


def command(
    workdir: Path,
    nproc: int,
    backend: str,
    result: Path,
    worker_args: list[str],
) -> list[str]:
    """The torchrun command line; the worker writes rank 0's result as JSON to `result`."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    cmd += ["--nproc_per_node", str(nproc), "-m", WORKER]
    return (
        cmd
        + ["--workdir", str(workdir), "--backend", backend, "--result", str(result)]
        + worker_args
    )


def run(cmd: list[str], nproc: int, result: Path) -> dict[str, Any]:
    """Run torchrun (workers' stdout to stderr, so `--json` stays clean); rank 0's result."""
    rc = subprocess.run(cmd, stdout=2, check=False).returncode
    if rc != 0 or not result.is_file():
        raise RuntimeError(
            f"torchrun with {nproc} processes exited with code {rc}; the workers' traceback is "
            "above on stderr (rerun with --nproc 1 to debug without DDP)"
        )
    raw: dict[str, Any] = json.loads(result.read_text())
    return raw
