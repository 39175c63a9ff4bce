"""Where pretrained weights come from: a local file, an s3:// URI or the torch hub cache.

Never a download from a model hub: this pipeline runs where that is impossible or unwanted, so a
missing file is a one-line error saying which path was looked up and how to supply the weights.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch

from xferlib import env
from xferlib.atomic import sha256_bytes


class WeightsNotFoundError(FileNotFoundError):
    """Pretrained weights were asked for but no file holds them."""


def hub_checkpoint_path(file_name: str) -> Path:
    """`$TORCH_HOME/hub/checkpoints/<file_name>` (torch's own cache layout), without touching it."""
    return Path(torch.hub.get_dir()) / "checkpoints" / file_name


def resolve_weights(name: str, weights: str | None, default_file: str) -> Path:
    """A local path holding the weights of backbone `name`.

    `weights` may be a local path or an s3:// URI (fetched into a temporary file through
    `xferlib.storage`); without it the torch hub cache is looked up under `default_file`.
    """
    if weights is not None and weights.startswith("s3://"):
        return _fetch_s3(weights)
    path = Path(weights) if weights is not None else hub_checkpoint_path(default_file)
    if not path.is_file():
        raise WeightsNotFoundError(
            f"pretrained weights for {name!r} not found at {path}; put torchvision's {default_file} "
            f"there (TORCH_HOME sets the root), pass model.weights=<file or s3:// URI>, "
            f"or use model.pretrained=false"
        )
    return path


def _fetch_s3(uri: str) -> Path:
    from xferlib.storage import download_file  # lazy: boto3 only when S3 is used

    cache = (env.weights_cache() or Path(tempfile.gettempdir())) / "xfer-weights"
    cache.mkdir(parents=True, exist_ok=True)
    dest = cache / sha256_bytes(uri.encode())[:16] / uri.rsplit("/", 1)[-1]  # a folder per URI
    if not dest.is_file():
        dest.parent.mkdir(parents=True, exist_ok=True)
        download_file(uri, dest)
    return dest


def load_state_dict_file(path: Path) -> dict[str, torch.Tensor]:
    """A plain state_dict from disk, refusing pickled code (`weights_only=True`)."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise ValueError(
            f"{path} does not hold a state_dict (got {type(state).__name__}); save one with torch.save(model.state_dict())"
        )
    return state
