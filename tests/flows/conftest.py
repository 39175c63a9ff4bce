"""A tiny but real work directory (tiny backbone, a few hundred Fashion-MNIST images, real git + DVC,
MLflow on one shared sqlite store) and Prefect's real local API for the orchestration tests."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import yaml

from xferlib.data.fashion import FASHION_CLASSES, export_imagefolder, load_fashion_mnist
from xferlib.demo.world import shift_array
from xferlib.env import QUIET_ENV

for _key, _value in QUIET_ENV.items():
    os.environ.setdefault(_key, _value)

# The promotion gate keeps its defaults here (min_accuracy, min_improvement, max_forgetting): a
# test that needs a promotion earns it. Hence 500 source images and 5 epochs: the tiny net's v1
# must clear the 0.5 accuracy floor (400 images x 3 epochs gave 0.49 on the 40-image holdout), and
# a retrain replays the whole old training set so that learning the feedback does not cost it the
# old holdout (a 100-image replay forgot 15 points).
SOURCE_IMAGES = 500  # x[:500] of the session's Fashion-MNIST slice: the source domain
TINY = {
    "model": {"backbone": "tiny", "pretrained": False, "image_size": 28},
    "finetune": {
        "strategy": "full",
        "epochs": 5,
        "lr_backbone": 3.0e-3,
        "lr_head": 3.0e-3,
        "batch_size": 32,
        "augment": False,
    },
    "retrain": {"strategy": "full", "epochs": 4, "replay_size": 1000},
    "drift": {"min_window": 60, "permutations": 99, "reference_size": 300},
}


@pytest.fixture(scope="session")
def prefect_api() -> Iterator[None]:
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=90):
        with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
            yield


@pytest.fixture(scope="session")
def mlflow_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One sqlite store for the session (first use of a new DB costs seconds of migrations)."""
    uri = f"sqlite:///{tmp_path_factory.mktemp('mlflow')}/mlflow.db"
    old = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = uri
    yield uri
    if old is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = old


@pytest.fixture(scope="session")
def fashion() -> tuple[np.ndarray, np.ndarray]:
    return load_fashion_mnist(split="train", limit=3000)


def make_workdir(
    root: Path, fashion: tuple[np.ndarray, np.ndarray], extra: dict | None = None
) -> Path:
    """A trained champion (v1) in a fresh work directory with a model name of its own."""
    from xferlib.stages import data, training

    x, y = fashion
    data.init(root)
    raw = yaml.safe_load((root / "params.yaml").read_text())
    for section, values in {**TINY, **(extra or {})}.items():
        raw[section].update(values)
    raw["registry"]["model_name"] = f"flowtest-{uuid.uuid4().hex[:8]}"
    (root / "params.yaml").write_text(yaml.safe_dump(raw))
    src = root.parent / f"{root.name}-src"
    export_imagefolder(x[:SOURCE_IMAGES], y[:SOURCE_IMAGES], FASHION_CLASSES, src, "s")
    data.ingest(root, src)
    data.prepare(root)
    training.train(root)
    return root


def write_window(folder: Path, images: np.ndarray, shift: str | None = None) -> Path:
    from PIL import Image

    imgs = shift_array(images, shift, 5, 0) if shift else np.repeat(images[..., None], 3, -1)
    folder.mkdir(parents=True, exist_ok=True)
    for i, img in enumerate(imgs):
        Image.fromarray(np.asarray(img, dtype=np.uint8)).save(folder / f"w{i:04d}.png")
    return folder


def write_feedback(
    folder: Path, x: np.ndarray, y: np.ndarray, shift: str, shuffle_labels: bool = False
) -> Path:
    labels = np.random.default_rng(0).permutation(y) if shuffle_labels else y
    export_imagefolder(shift_array(x, shift, 5, 1), labels, FASHION_CLASSES, folder, "fb")
    return folder


def run_quick_demo(workdir: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    """`xfer demo --quick --json` in a subprocess, on the demo's own embedded stores (the tests'
    MLFLOW_TRACKING_URI and PREFECT_API_URL are not passed on); `flags` e.g. `--no-prefect`."""
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    env.pop("MLFLOW_TRACKING_URI", None)
    env.pop("PREFECT_API_URL", None)
    return subprocess.run(
        [str(bin_dir / "xfer"), "demo", "--quick", "--json", "--workdir", str(workdir), *flags],
        capture_output=True, text=True, env=env, timeout=1200,
    )  # fmt: skip


def assert_default_gate(workdir: Path) -> None:
    """The work dir gates with the shipped defaults: no guard loosened for a test to pass."""
    from xferlib.config import RegistryParams
    from xferlib.context import Context

    gate, shipped = Context.load(workdir).params.registry, RegistryParams()
    for guard in ("min_accuracy", "min_improvement", "max_forgetting"):
        assert getattr(gate, guard) == getattr(shipped, guard), (
            f"{workdir}/params.yaml sets registry.{guard}={getattr(gate, guard)}, "
            f"the default is {getattr(shipped, guard)}"
        )
