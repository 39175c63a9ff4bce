"""A real git + DVC repo: ingest, track, push to a local remote, clone elsewhere, pull, same data."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pandas as pd
import pytest

from xferlib.data.ingest import ingest
from xferlib.data.shards import read_image_bytes, read_manifest
from xferlib.versioning import (
    VersioningError,
    data_version,
    init_repo,
    pull,
    push,
    remote_url,
    track,
)
from xferlib.workdir import Workdir


def git(cwd, *args) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout


def test_track_push_clone_pull_gives_same_manifest_and_version(tmp_path, img, params):
    wd = Workdir(tmp_path / "work")
    init_repo(wd.root)
    init_repo(wd.root)  # idempotent: no error, no second commit
    assert len(git(wd.root, "log", "--oneline").splitlines()) == 1

    img.write_files(
        tmp_path / "src" / "cat", {f"{i}.png": img.encode(img.rgb(i)) for i in range(5)}
    )
    ingest(tmp_path / "src", wd.dataset("source"), wd.quarantine, params, source="test")
    version = track(wd.root, wd.dataset("source"))
    assert version.md5.endswith(".dir") and len(version.git_rev) == 40
    assert str(version) == f"md5:{version.md5}@{version.git_rev[:7]}"
    assert git(wd.root, "status", "--porcelain", "--", "data") == ""  # .dvc + .gitignore committed
    push(wd.root, [wd.dataset("source")])
    assert any(Path(wd.dvc_remote).rglob("*.dir"))

    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(wd.root), str(clone))
    assert not (clone / "data" / "source").exists()
    pull(clone)
    theirs, ours = read_manifest(clone / "data" / "source"), read_manifest(wd.dataset("source"))
    pd.testing.assert_frame_equal(theirs, ours)
    assert read_image_bytes(clone / "data" / "source", theirs.iloc[0]) == read_image_bytes(
        wd.dataset("source"), ours.iloc[0]
    )
    assert data_version(clone, clone / "data" / "source") == version

    img.write_files(tmp_path / "more" / "dog", {"new.png": img.encode(img.rgb(77))})
    ingest(tmp_path / "more", wd.dataset("source"), wd.quarantine, params, source="test")
    newer = track(wd.root, wd.dataset("source"))
    assert newer.md5 != version.md5 and newer.git_rev != version.git_rev


def test_push_failure_names_the_remote(tmp_path, img, params):
    blocked = tmp_path / "not-a-dir"
    blocked.write_text("a file where the remote folder should be")
    init_repo(tmp_path / "work", remote=str(blocked))
    img.write_files(tmp_path / "src" / "cat", {"a.png": img.encode(img.rgb(1))})
    ingest(
        tmp_path / "src",
        tmp_path / "work" / "data" / "ds",
        tmp_path / "work" / "quarantine",
        params,
        source="t",
    )
    track(tmp_path / "work", tmp_path / "work" / "data" / "ds")
    with pytest.raises(VersioningError, match=f"remote {blocked}.*after 2 attempts") as err:
        push(tmp_path / "work", retries=2, backoff=0.01)
    assert "\n" not in str(err.value)


def test_data_version_of_untracked_dataset_says_how_to_fix(tmp_path):
    with pytest.raises(VersioningError, match="track the dataset first"):
        data_version(tmp_path, tmp_path / "data" / "nothing")


def test_s3_remote_is_configured_with_endpoint_kept_local(tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    init_repo(tmp_path / "work", remote="s3://bucket/xfer")
    config = (tmp_path / "work" / ".dvc" / "config").read_text()
    assert "s3://bucket/xfer" in config and "127.0.0.1" not in config
    assert (
        "endpointurl = http://127.0.0.1:9"
        in (tmp_path / "work" / ".dvc" / "config.local").read_text()
    )


def test_init_again_without_remote_keeps_the_configured_one(tmp_path):
    init_repo(tmp_path / "work", remote="s3://bucket/keep")
    init_repo(tmp_path / "work")
    assert remote_url(tmp_path / "work") == "s3://bucket/keep"


def test_init_commits_the_pipeline_and_a_stage_commits_it_except_inside_a_dvc_experiment(
    tmp_path, monkeypatch
):
    from xferlib import versioning
    from xferlib.stages import data

    wd = tmp_path / "w"
    data.init(wd)
    assert {"params.yaml", "dvc.yaml", ".gitignore", ".dvc/config"} <= set(
        git(wd, "ls-files").split()
    )
    assert git(wd, "status", "--porcelain") == ""
    assert "autostage = true" in (wd / ".dvc" / "config").read_text()  # dvc repro stages dvc.lock

    (wd / "params.yaml").write_text((wd / "params.yaml").read_text() + "# edited\n")
    (wd / "dvc.lock").write_text("schema: '2.0'\nstages: {}\n")
    head = git(wd, "rev-parse", "HEAD").strip()
    monkeypatch.setenv("DVC_EXP_NAME", "exp-1")  # DVC commits an experiment on its own ref
    assert versioning.commit_pipeline(wd, "inside an experiment") == head
    assert sorted(git(wd, "status", "--porcelain").splitlines()) == [
        " M params.yaml",
        "?? dvc.lock",
    ]
    monkeypatch.delenv("DVC_EXP_NAME")
    rev = versioning.commit_pipeline(wd, "xfer: pipeline before train")
    assert rev != head and rev == git(wd, "rev-parse", "HEAD").strip()
    assert git(wd, "status", "--porcelain") == ""
    assert versioning.commit_pipeline(wd, "nothing changed") == rev
    assert versioning.commit_pipeline(tmp_path / "not-a-repo", "x") == ""
