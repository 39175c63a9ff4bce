"""One torchrun worker of `xfer train --nproc N` (started by `stages.training.launch`).

An entry point like the CLI, so it sits above the stages. It joins the process group, runs
`stages.training.train_in_process` (rank 0: everything; other ranks: their
share of the fit only) and rank 0 writes its result where `launch` reads it. Ranks other than 0
run under an audit hook that refuses any write under the work directory, so a future change that
lets them write (a second checkpoint, a second MLflow run) fails loudly instead of racing rank 0.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import Any

from xferlib import env
from xferlib.atomic import atomic_write_json

_WRITE_EVENTS = (
    "os.rename",
    "os.mkdir",
    "os.remove",
    "os.rmdir",
    "shutil.rmtree",
)  # rename: also replace
_GUARDED: Path | None = None


def _parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="xferlib.distributed_worker")
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--backend", required=True, choices=["gloo", "nccl"])
    ap.add_argument("--result", required=True, help="where rank 0 writes its result (JSON)")
    ap.add_argument("--params", default=None)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--no-register", action="store_true")
    ap.add_argument("--tags", default=None, help="JSON object of run tags")
    return ap.parse_args(argv)


def _under_guard(path: Any) -> bool:
    if _GUARDED is None or not isinstance(path, str | bytes | os.PathLike):
        return False
    p = Path(os.fsdecode(path))
    return p.resolve().is_relative_to(_GUARDED)


def _writes(mode: Any, flags: Any) -> bool:
    """Whether an `open` audit event opens for writing (`open()` gives a mode, `os.open` flags)."""
    if isinstance(mode, str):
        return bool(set(mode) & set("wax+"))
    return isinstance(flags, int) and bool(flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT))


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event == "open" and len(args) == 3 and _writes(args[1], args[2]):
        paths: tuple[Any, ...] = args[:1]
    elif event in _WRITE_EVENTS:
        paths = args[:2]
    else:
        return
    for path in paths:
        if _under_guard(path):
            raise PermissionError(
                f"rank {env.rank()} tried {event} on {os.fsdecode(path)}; only rank 0 "
                "writes in the work directory"
            )


def guard_workdir(root: Path) -> None:
    """Refuse writes under `root` from this process from now on (a Python audit hook)."""
    global _GUARDED
    if _GUARDED is None:
        sys.addaudithook(_audit)
    _GUARDED = root.resolve()


def main(argv: list[str] | None = None) -> int:
    import torch
    import torch.distributed as dist

    from xferlib.stages import training

    args = _parse(argv)
    if args.backend == "nccl":
        torch.cuda.set_device(env.local_rank())
    dist.init_process_group(args.backend)
    try:
        if dist.get_rank() != 0:
            guard_workdir(Path(args.workdir))
        result = training.train_in_process(
            args.workdir,
            params_path=args.params,
            resume=args.resume,
            register=not args.no_register,
            tags=json.loads(args.tags) if args.tags else None,
        )
        if dist.get_rank() == 0:
            done = dataclasses.replace(result, world_size=dist.get_world_size())
            atomic_write_json(args.result, done.to_dict(), indent=None)
    finally:
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
