"""What every stage needs: the work directory and its checked params."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xferlib.atomic import atomic_write_json
from xferlib.config import Params, load_params
from xferlib.workdir import Workdir

PathLike = str | os.PathLike[str] | None  # a work dir argument: None is $XFER_HOME or the default


@dataclass(frozen=True)
class Context:
    wd: Workdir
    params: Params

    @staticmethod
    def load(workdir: PathLike, params_path: str | os.PathLike[str] | None = None) -> Context:
        wd = Workdir.resolve(workdir)
        return Context(wd, load_params(Path(params_path) if params_path else wd.params_file))


def write_json(path: Path, data: Any) -> None:
    """Atomic JSON write (`xferlib.atomic`): a crash never leaves half a file behind."""
    atomic_write_json(path, data)


def read_json(path: Path, default: Any = None) -> Any:
    if not path.exists():
        if default is not None:
            return default
        raise FileNotFoundError(f"{path} does not exist; run the stage that writes it first")
    return json.loads(path.read_text())
