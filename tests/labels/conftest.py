"""A real git + DVC work dir with an incident waiting for labels (no champion needed)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from xferlib.context import Context, write_json
from xferlib.data.fashion import FASHION_CLASSES
from xferlib.labels.batch import write_request
from xferlib.labels.incidents import IncidentStore
from xferlib.stages import data
from xferlib.workdir import Workdir

IDS = [f"img{i}" for i in range(6)]


@pytest.fixture(scope="module")
def initialised(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`xfer init` once per module (git + DVC: seconds of subprocesses); tests take copies."""
    wd = tmp_path_factory.mktemp("labels") / "wd"
    data.init(wd)
    return wd


@pytest.fixture
def waiting(initialised: Path, tmp_path: Path) -> tuple[Path, str]:
    """A git + DVC work dir with the champion's label map and an incident whose request holds
    six images (`img0`..`img5`) waiting for labels."""
    wd = tmp_path / "wd"
    shutil.copytree(initialised, wd, symlinks=True)
    write_json(wd / "prepared" / "label_map.json", {c: i for i, c in enumerate(FASHION_CLASSES)})
    src = tmp_path / "window"
    src.mkdir()
    rng = np.random.default_rng(0)
    for i in range(6):
        Image.fromarray(rng.integers(0, 255, (28, 28, 3), dtype=np.uint8)).save(src / f"{i}.png")
    chosen = pd.DataFrame({"image_id": IDS, "source": [str(src / f"{i}.png") for i in range(6)]})
    store = IncidentStore(Workdir(wd).incidents)
    inc, _ = store.open_or_join(Context.load(wd).params.registry.model_name, "1", "w1", "r1")
    files = write_request(Workdir(wd).labels(inc.id) / "request", chosen)
    store.transition(inc.id, "labels_requested", label_request={"count": files.count})
    return wd, inc.id
