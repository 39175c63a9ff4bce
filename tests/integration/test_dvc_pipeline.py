"""`dvc repro` / `dvc exp run -S` over the xfer stages in a real git + DVC work directory, offline,
and the CLI's one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from xferlib.data.fashion import FASHION_CLASSES, export_imagefolder, load_fashion_mnist
from xferlib.env import quiet_environ

BIN = Path(sys.executable).parent
ENV = quiet_environ(PATH=f"{BIN}:{os.environ['PATH']}")


def xfer(
    *args: str, cwd: Path | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "xfer"), *args], capture_output=True, text=True, env=ENV, cwd=cwd, check=check
    )


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    x, y = load_fashion_mnist(split="train", limit=300)
    export_imagefolder(x, y, FASHION_CLASSES, tmp_path / "src", "s")
    wd = tmp_path / "wd"
    xfer("init", "--workdir", str(wd))
    raw = yaml.safe_load((wd / "params.yaml").read_text())
    raw["model"].update(backbone="tiny", pretrained=False, image_size=28)
    raw["finetune"].update(strategy="full", epochs=2, batch_size=32)
    (wd / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    out = json.loads(xfer("ingest", str(tmp_path / "src"), "--workdir", str(wd), "--json").stdout)
    assert out["accepted"] == 300 and out["data_version"].startswith("md5:")
    return wd


@pytest.mark.slow
def test_dvc_repro_runs_the_stages_and_exp_run_changes_a_param(workdir: Path) -> None:
    subprocess.run(
        ["dvc", "repro"], cwd=workdir, env=ENV, check=True, capture_output=True, text=True
    )
    metrics = json.loads((workdir / "metrics" / "eval.json").read_text())
    assert 0.0 <= metrics["accuracy"] <= 1.0
    assert (workdir / "plots" / "confusion.png").stat().st_size > 0
    shown = subprocess.run(
        ["dvc", "metrics", "show", "--json"],
        cwd=workdir,
        env=ENV,
        check=True,
        capture_output=True,
        text=True,
    )
    assert "accuracy" in shown.stdout
    again = subprocess.run(
        ["dvc", "repro"], cwd=workdir, env=ENV, check=True, capture_output=True, text=True
    )
    assert "didn't change" in again.stdout or "up to date" in again.stdout.lower()
    subprocess.run(["git", "add", "-A"], cwd=workdir, check=True)
    subprocess.run(["git", "commit", "-qm", "baseline"], cwd=workdir, check=True)
    exp = subprocess.run(
        ["dvc", "exp", "run", "-S", "finetune.lr_head=5.0e-2"],
        cwd=workdir,
        env=ENV,
        capture_output=True,
        text=True,
    )
    assert exp.returncode == 0, exp.stderr[-800:]
    table = subprocess.run(
        ["dvc", "exp", "show", "--json"],
        cwd=workdir,
        env=ENV,
        check=True,
        capture_output=True,
        text=True,
    )
    assert "0.05" in table.stdout


def test_cli_errors_are_one_line_and_name_the_fix(workdir: Path, tmp_path: Path) -> None:
    missing = xfer("ingest", str(tmp_path / "nope"), "--workdir", str(workdir), check=False)
    assert missing.returncode == 2 and len(missing.stderr.strip().splitlines()) == 1
    assert "does not exist" in missing.stderr
    (workdir / "params.yaml").write_text("finetune:\n  lr_hed: 0.1\n")
    bad = xfer("prepare", "--workdir", str(workdir), check=False)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1
    assert "unknown key finetune.lr_hed" in bad.stderr and "lr_head" in bad.stderr


def test_help_is_fast_and_lists_the_stages() -> None:
    out = xfer("--help").stdout
    for cmd in (
        "ingest",
        "prepare",
        "train",
        "evaluate",
        "score",
        "drift",
        "retrain",
        "demo",
        "lineage",
    ):
        assert cmd in out
