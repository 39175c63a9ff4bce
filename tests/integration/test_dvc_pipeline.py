"""`dvc repro` / `dvc exp run -S` over the xfer stages in a real git + DVC work directory, offline,
and the CLI's one-line errors."""

from __future__ import annotations

import functools
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
# the work dir's own sqlite store: what a DVC user gets with nothing configured
ENV = {
    k: v
    for k, v in quiet_environ(PATH=f"{BIN}:{os.environ['PATH']}").items()
    if k not in ("MLFLOW_TRACKING_URI", "XFER_HOME", "XFER_DVC_REMOTE", "XFER_TRAIN_NPROC")
}


def git(wd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=wd, check=True, capture_output=True, text=True).stdout


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
    # git holds the pipeline from the start: a clone has params.yaml, dvc.yaml and the remote
    tracked = git(wd, "ls-files").split()
    assert {"params.yaml", "dvc.yaml", ".gitignore", ".dvc/config"} <= set(tracked)
    assert git(wd, "status", "--porcelain") == ""
    raw = yaml.safe_load((wd / "params.yaml").read_text())
    raw["model"].update(backbone="tiny", pretrained=False, image_size=28)
    raw["finetune"].update(strategy="full", epochs=2, batch_size=32)
    (wd / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    out = json.loads(xfer("ingest", str(tmp_path / "src"), "--workdir", str(wd), "--json").stdout)
    assert out["accepted"] == 300 and out["data_version"].startswith("md5:")
    return wd


def _registry(wd: Path) -> tuple[str, list[dict], str | None]:
    """(model name, the audit history, the champion version) of the work dir's own store."""
    from xferlib import registry
    from xferlib.context import Context

    ctx = Context.load(wd)
    name = ctx.params.registry.model_name
    rows = json.loads(xfer("registry", "history", "--workdir", str(wd), "--json").stdout)
    champion = registry.champion_version(ctx.wd.mlflow_uri, name)
    return name, rows["history"], None if champion is None else str(champion)


def _tags(wd: Path, name: str, version: str) -> dict[str, str]:
    """The registered version's tags (the lineage the train stage gave it)."""
    from xferlib import registry
    from xferlib.workdir import Workdir

    return registry.get_version_info(Workdir(wd).mlflow_uri, name, version).tags


@pytest.mark.slow
def test_dvc_repro_registers_and_gates_like_xfer_train_and_exp_run_changes_a_param(
    workdir: Path,
) -> None:
    repro = subprocess.run(["dvc", "repro"], cwd=workdir, env=ENV, capture_output=True, text=True)
    assert repro.returncode == 0, repro.stderr[-800:]
    # what `xfer train` leaves: version 1, judged by the default gate, champion iff promoted,
    # its drift reference, and the gate's record in the model/ out
    name, rows, champion = _registry(workdir)
    gate = json.loads((workdir / "model" / "gate.json").read_text())
    assert (gate["model_name"], gate["version"]) == (name, "1")
    assert [str(r["version"]) for r in rows] == ["1"]
    assert champion == ("1" if gate["decision"]["action"] == "promote" else None)
    assert (workdir / "references" / name / "v1").is_dir()
    # the version names the commit it trained from: params, dvc.yaml and prepare's lock entry
    rev = _tags(workdir, name, "1")["xfer.pipeline_rev"]
    lock = yaml.safe_load(git(workdir, "show", f"{rev}:dvc.lock"))
    assert set(lock["stages"]) == {"prepare"}
    assert yaml.safe_load(git(workdir, "show", f"{rev}:params.yaml")) == yaml.safe_load(
        (workdir / "params.yaml").read_text()
    )
    # git holds the rest, metrics and plots included; DVC writes a stage's lock entry after its
    # command exits, so the last stage's entry is staged (core.autostage) for the next commit
    assert {"dvc.lock", "metrics/eval.json", "plots/confusion.csv"} <= set(
        git(workdir, "ls-files").split()
    )
    assert git(workdir, "status", "--porcelain").splitlines() == ["M  dvc.lock"]
    assert set(yaml.safe_load(git(workdir, "show", "HEAD:dvc.lock"))["stages"]) == {
        "prepare",
        "train",
    }
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
    git(workdir, "commit", "-qm", "baseline", "--", "dvc.lock")  # the one step DVC leaves us
    assert git(workdir, "status", "--porcelain") == ""
    dvc = functools.partial(subprocess.run, env=ENV, capture_output=True, text=True)
    assert dvc(["dvc", "push"], cwd=workdir).returncode == 0
    clone = workdir.parent / "clone"  # git clone + dvc pull: the whole pipeline, up to date
    subprocess.run(["git", "clone", "-q", str(workdir), str(clone)], check=True)
    assert dvc(["dvc", "pull"], cwd=clone).returncode == 0
    for out in ("model/model.pt", "prepared/splits.parquet", "metrics/eval.json"):
        assert (clone / out).read_bytes() == (workdir / out).read_bytes(), out
    assert "up to date" in dvc(["dvc", "status"], cwd=clone).stdout
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
    # the experiment registered (and was gated) as version 2, tagged with its name; the branch
    # itself was not moved by the stages (DVC commits the experiment on its own ref)
    _, rows, _ = _registry(workdir)
    assert [str(r["version"]) for r in rows][-1] == "2"
    assert "xfer.dvc_exp" in _tags(workdir, name, "2")
    assert git(workdir, "log", "-1", "--format=%s") == "baseline\n"


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
