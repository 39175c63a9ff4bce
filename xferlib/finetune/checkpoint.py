"""`last.pt`: everything needed to continue a killed run exactly where it stopped.

Written atomically (`xferlib.atomic.atomic_writer`) after every epoch, so a kill mid-write leaves the
previous epoch's checkpoint intact. It holds only tensors and plain containers and is read with
`weights_only=True`.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import torch

from xferlib.atomic import atomic_writer

CHECKPOINT_FILE = "last.pt"


def rng_states() -> dict[str, Any]:
    """The global torch RNG states (CPU, and every CUDA device when present)."""
    states: dict[str, Any] = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng(states: dict[str, Any]) -> None:
    torch.set_rng_state(states["cpu"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def save_checkpoint(checkpoint_dir: Path, state: dict[str, Any]) -> Path:
    """Atomically write `state` to `checkpoint_dir/last.pt`."""
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    path = checkpoint_dir / CHECKPOINT_FILE
    try:
        with atomic_writer(path) as f:
            torch.save(state, f)
    except (OSError, RuntimeError) as exc:  # torch reports a full disk as "unexpected pos"
        free = shutil.disk_usage(checkpoint_dir).free
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise OSError(
            f"cannot write checkpoint {path} ({free} bytes free on its disk: {first}); "
            "free disk space or point --workdir at a larger disk"
        ) from exc
    return path


def load_checkpoint(checkpoint_dir: Path) -> dict[str, Any] | None:
    """The saved state, or None when no checkpoint exists yet."""
    path = checkpoint_dir / CHECKPOINT_FILE
    if not path.is_file():
        return None
    return torch.load(path, map_location="cpu", weights_only=True)
