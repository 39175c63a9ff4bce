"""`xfer train --nproc N` for real: torchrun, the gloo backend on CPU, DDP over the tiny backbone.

Two processes with the same global batch must reach the weights of one (the batch is split, not
changed: same shuffled order, cross-rank BatchNorm, loss scaled by each rank's share), and only
rank 0 may write in the work directory.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from xferlib import cli
from xferlib.config import ConfigError, Params
from xferlib.finetune import launch as distributed
from xferlib.stages import training

pytestmark = pytest.mark.integration

PARAMS = {
    "model": {"backbone": "tiny", "pretrained": False, "image_size": 28},
    "finetune": {
        "strategy": "full",
        "epochs": 2,
        "batch_size": 32,
        "lr_backbone": 3.0e-3,
        "lr_head": 3.0e-3,
        "augment": False,
        "device": "cpu",
        "seed": 7,
    },
}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A work directory built like tests/flows: init + ingest 300 Fashion-MNIST images + prepare."""
    from xferlib.data.fashion import FASHION_CLASSES, export_imagefolder, load_fashion_mnist
    from xferlib.stages import data

    base = tmp_path_factory.mktemp("ddp")
    root = base / "w"
    data.init(root)
    raw = yaml.safe_load((root / "params.yaml").read_text())
    for section, values in PARAMS.items():
        raw[section].update(values)
    (root / "params.yaml").write_text(yaml.safe_dump(raw))
    x, y = load_fashion_mnist(split="train", limit=300)
    export_imagefolder(x, y, FASHION_CLASSES, base / "src", "s")
    data.ingest(root, base / "src")
    data.prepare(root)
    return root


def _files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def _weights(root: Path) -> dict[str, torch.Tensor]:
    return torch.load(root / "model" / "model.pt", map_location="cpu", weights_only=True)


# slow suite (CI runs it): keeps `make test` under its 15-minute budget
@pytest.mark.slow
def test_two_processes_train_like_one_and_only_rank0_writes(
    prepared: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    shutil.copytree(prepared, one, symlinks=True)
    shutil.copytree(prepared, two, symlinks=True)
    before = _files(two)

    t0 = time.perf_counter()
    r1 = training.launch(one, nproc=1, register=False)
    t1 = time.perf_counter()
    assert (
        cli.main(["train", "--workdir", str(two), "--nproc", "2", "--no-register", "--json"]) == 0
    )
    t2 = time.perf_counter()
    r2 = json.loads(capsys.readouterr().out)

    assert (r1.world_size, r2["world_size"]) == (1, 2)
    assert r2["distributed"] == {"nproc": 2, "backend": "gloo"}
    h1, h2 = r1.train.history, r2["train"]["history"]
    assert len(h1) == len(h2) == 2
    assert [r["val_accuracy"] for r in h1] == [r["val_accuracy"] for r in h2]
    for a, b in zip(h1, h2, strict=True):
        assert abs(a["train_loss"] - b["train_loss"]) < 1e-3

    # AdamW divides by sqrt(v): a gradient entry that is ~1e-9 in both runs (float noise) still
    # moves its weight by ~lr, so end-to-end the runs drift apart by much more than the 1e-7 of
    # one step's gradients (asserted below). Here: the drift is small next to what training moved.
    init, w1, w2 = _init_weights(one), _weights(one), _weights(two)
    keys = [k for k in w1 if w1[k].is_floating_point() and "running" not in k]
    diff = max((w1[k] - w2[k]).abs().max().item() for k in keys)
    drift = sum((w1[k] - w2[k]).abs().sum().item() for k in keys)
    moved = sum((w1[k] - init[k]).abs().sum().item() for k in keys)
    print(
        f"\nnproc=1 {t1 - t0:.1f} s, nproc=2 {t2 - t1:.1f} s; max|w1-w2|={diff:.2e}, "
        f"sum|w1-w2|/sum|w1-init|={drift / moved:.3f}"
    )
    assert diff < 1e-2 and drift < 0.05 * moved

    # rank 1 ran under the worker's write guard (a write would have failed the run), and the
    # two-process run left exactly the files of the one-process run: one model, one last.pt
    after = _files(two)
    assert after == _files(one)
    assert {"model/model.pt", "model/train.json", "checkpoints/last.pt"} <= after - before
    assert not [f for f in after if f.endswith(".tmp")]


def test_one_global_batch_gives_the_same_gradient_on_two_ranks_as_on_one() -> None:
    script = Path(__file__).with_name("ddp_step.py")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    out = subprocess.run([*cmd, str(script)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"\none step, 2 ranks vs 1: {result}")
    assert result["grad_diff"] < 1e-6 and result["grad_scale"] > 1e-3  # gradients of ~1e-2
    assert result["state_diff"] < 1e-5  # BatchNorm running statistics of the global batch


def _init_weights(root: Path) -> dict[str, torch.Tensor]:
    from xferlib.context import Context, read_json
    from xferlib.stages.training import build_model

    ctx = Context.load(root)
    return build_model(ctx, len(read_json(ctx.wd.prepared / "label_map.json"))).state_dict()


def test_worker_guard_refuses_writes_under_the_workdir(tmp_path: Path) -> None:
    code = (
        "import sys, pathlib; from xferlib.distributed_worker import guard_workdir\n"
        f"root = pathlib.Path({str(tmp_path)!r}); guard_workdir(root)\n"
        "open(root.parent / 'outside.txt', 'w').write('ok')\n"
        "try:\n    (root / 'model.pt').write_bytes(b'x')\nexcept PermissionError as e:\n"
        "    print('refused:', e); sys.exit(0)\nsys.exit(1)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "only rank 0 writes" in out.stdout and not (tmp_path / "model.pt").exists()


def test_nproc_comes_from_the_flag_then_the_env_then_params(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    params = Params().replace(distributed={"nproc": 3})
    monkeypatch.delenv(distributed.NPROC_ENV, raising=False)
    assert distributed.resolve_nproc(params) == 3
    monkeypatch.setenv(distributed.NPROC_ENV, "2")
    assert distributed.resolve_nproc(params) == 2
    assert distributed.resolve_nproc(params, 4) == 4
    monkeypatch.setenv(distributed.NPROC_ENV, "two")
    with pytest.raises(ConfigError, match="XFER_TRAIN_NPROC='two'"):
        distributed.resolve_nproc(params)


def test_a_global_batch_that_does_not_split_evenly_is_refused_before_launch(
    prepared: Path,
) -> None:
    with pytest.raises(ConfigError, match="batch_size=32 is not divisible by --nproc 3"):
        training.launch(prepared, nproc=3, register=False)


@pytest.mark.parametrize("how", ["--nproc", "XFER_TRAIN_NPROC"])
def test_linear_probe_on_two_processes_is_refused_in_one_line_not_run_on_one(
    how: str,
    prepared: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    wd = tmp_path / "w"
    shutil.copytree(prepared, wd, symlinks=True)
    raw = yaml.safe_load((wd / "params.yaml").read_text())
    raw["finetune"]["strategy"] = "linear_probe"
    (wd / "params.yaml").write_text(yaml.safe_dump(raw))
    before = _files(wd)
    monkeypatch.delenv(distributed.NPROC_ENV, raising=False)
    args = ["train", "--workdir", str(wd), "--no-register"]
    if how == "--nproc":
        args += ["--nproc", "2"]
    else:
        monkeypatch.setenv(distributed.NPROC_ENV, "2")

    assert cli.main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "linear_probe" in err and "does not distribute over 2 processes" in err
    assert "--nproc 1" in err and "finetune.strategy full" in err  # the fix, in the message
    assert _files(wd) == before  # nothing trained, not even on one process
    with pytest.raises(ConfigError, match="linear_probe"):
        distributed.check(Params(), 2)  # the shipped default strategy
    distributed.check(Params(), 1)
