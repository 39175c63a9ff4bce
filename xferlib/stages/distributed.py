"""`xfer train --nproc N`: data-parallel training on one node through torchrun (DDP).

`launch` runs `python -m torch.distributed.run --standalone --nproc_per_node N -m
xferlib.stages.distributed_worker ...` and waits. Every worker runs `stages.training.train`, the
same code path as a single-process run: rank 0 fits its share of each batch *and* does all the I/O
(MLflow run, checkpoints, model, registration and gate), the other ranks fit their share and write
nothing. Rank 0 hands its result back as JSON in a temporary directory outside the work dir.

`linear_probe` trains a head on cached features: launching N processes to repeat that cheap work
gains nothing, so it runs in this process (rank 0 only, features extracted once).
Multi-node (`--nnodes`, a rendezvous endpoint) is torchrun's own business and is not wired here.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from xferlib import env
from xferlib.config import ConfigError, Params
from xferlib.stages.context import Context
from xferlib.stages.results import Distributed, TrainStageResult

PathLike = str | os.PathLike[str] | None
NPROC_ENV = "XFER_TRAIN_NPROC"


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


def train(
    workdir: PathLike,
    *,
    nproc: int | None = None,
    params_path: str | None = None,
    resume: bool = False,
    register: bool = True,
    tags: dict[str, str] | None = None,
) -> TrainStageResult:
    """The train stage on `resolve_nproc` processes: in this process for one, else `launch`."""
    from xferlib.stages import training

    n = resolve_nproc(Context.load(workdir, params_path).params, nproc)
    if n == 1:
        return training.train(
            workdir, params_path=params_path, resume=resume, register=register, tags=tags
        )
    return launch(
        workdir, nproc=n, params_path=params_path, resume=resume, register=register, tags=tags
    )


def launch(
    workdir: PathLike,
    nproc: int,
    params_path: str | None = None,
    resume: bool = False,
    *,
    register: bool = True,
    tags: dict[str, str] | None = None,
) -> TrainStageResult:
    """Train on `nproc` torchrun processes of this node and return rank 0's result."""
    from xferlib.stages import training

    ctx = Context.load(workdir, params_path)
    _check(ctx.params, nproc)
    if ctx.params.finetune.strategy == "linear_probe":
        result = training.train(
            workdir, params_path=params_path, resume=resume, register=register, tags=tags
        )
        note = "linear_probe runs on rank 0 only"
        return dataclasses.replace(result, distributed=Distributed(nproc, None, note))
    backend = resolve_backend(ctx.params.distributed.backend)
    with tempfile.TemporaryDirectory(prefix="xfer-ddp-") as tmp:
        out = Path(tmp) / "rank0.json"
        cmd = _command(ctx, nproc, backend, out, params_path, resume, register, tags)
        rc = subprocess.run(cmd, stdout=2, check=False).returncode  # keep stdout for --json
        if rc != 0 or not out.is_file():
            raise RuntimeError(
                f"torchrun with {nproc} processes exited with code {rc}; the workers' traceback is "
                "above on stderr (rerun with --nproc 1 to debug without DDP)"
            )
        result = TrainStageResult.from_dict(json.loads(out.read_text()))
    return dataclasses.replace(result, distributed=Distributed(nproc, backend))


def _check(params: Params, nproc: int) -> None:
    if nproc < 1:
        raise ConfigError(f"nproc={nproc} must be at least 1 (the processes per node)")
    batch = params.finetune.batch_size
    if batch % nproc:
        raise ConfigError(
            f"finetune.batch_size={batch} is not divisible by --nproc {nproc}; use a multiple of "
            f"{nproc} (batch_size is the global batch, split across processes)"
        )


def _command(
    ctx: Context,
    nproc: int,
    backend: str,
    out: Path,
    params_path: str | None,
    resume: bool,
    register: bool,
    tags: dict[str, str] | None,
) -> list[str]:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    cmd += ["--nproc_per_node", str(nproc), "-m", "xferlib.stages.distributed_worker"]
    cmd += ["--workdir", str(ctx.wd.root), "--backend", backend, "--result", str(out)]
    cmd += ["--params", str(Path(params_path).resolve())] if params_path else []
    cmd += ["--resume"] if resume else []
    cmd += [] if register else ["--no-register"]
    return cmd + (["--tags", json.dumps(tags)] if tags else [])
