"""The work directory as a git + DVC repo: datasets are `dvc add`-ed, their .dvc files committed.

A data version is the directory hash DVC records in `data/<dataset>.dvc` plus the git commit
that recorded it; a model trained on it can always get the same bytes back with `dvc pull`.
We drive the `git` and `dvc` command-line tools (the same ones a user would type) rather than
DVC's Python internals, which change between releases.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from xferlib import env
from xferlib.atomic import atomic_write_text
from xferlib.workdir import Workdir

REMOTE_NAME = "storage"
_GIT_IDENTITY = {"user.name": "xfer", "user.email": "xfer@localhost"}


class VersioningError(RuntimeError):
    """A git or DVC command failed; the message carries its first meaningful error line."""


@dataclass(frozen=True)
class DataVersion:
    """`md5`: DVC's directory hash (ends in `.dir`); `git_rev`: the commit of the .dvc file."""

    md5: str
    git_rev: str
    path: str

    def __str__(self) -> str:
        return f"md5:{self.md5}@{self.git_rev[:7] or 'uncommitted'}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"version": str(self)}


def init_repo(root: Path | str, remote: str | None = None) -> None:
    """Make `root` a git + DVC repo with a default remote (idempotent).

    The remote is `remote` (a path or URL, e.g. s3://bucket/prefix) or the workdir's local
    `.dvcstore`. For s3:// remotes, AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL (if set) becomes the remote's endpoint in
    the uncommitted `.dvc/config.local`, since endpoints are infrastructure, not history.
    """
    root = Path(root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    if not (root / ".git").exists():
        _git(root, "init", "-q")
    for key, value in _GIT_IDENTITY.items():
        if _run([_tool("git"), "config", key], root, check=False).returncode != 0:
            _git(root, "config", "--local", key, value)
    if not (root / ".dvc").exists():
        _dvc(root, "init", "-q")
    # `dvc repro` then `git add`s the dvc.lock (and .gitignore) it changed when it ends
    _dvc(root, "config", "core.autostage", "true")
    url = remote or remote_url(root)  # re-running without a remote keeps the configured one
    if remote or not url:
        url = url or Workdir(root).dvc_remote
        _dvc(root, "remote", "add", "--default", "--force", REMOTE_NAME, url)
    endpoint = env.s3_endpoint()
    if url.startswith("s3://") and endpoint:
        _dvc(root, "remote", "modify", "--local", REMOTE_NAME, "endpointurl", endpoint)
    _ignore(root, "/.dvcstore/")
    _commit(
        root,
        "xfer: init data versioning",
        [".dvc/config", ".dvc/.gitignore", ".dvcignore", ".gitignore"],
    )


def commit_pipeline(root: Path | str, message: str) -> str:
    """Commit the pipeline's files as they stand (`Workdir.pipeline_files`); the commit (HEAD).

    A stage calls this first, so a model names a commit holding its params and the lock entries
    of the stages before it. DVC writes a stage's lock entry only after its command exits, so the
    last stage's entry is left for the next commit (`core.autostage` stages it). Not inside
    `dvc exp run`: DVC commits the experiment on a ref of its own, and a commit to the branch
    would move the experiment's baseline under it. '' when `root` is not a git repo.
    """
    root = Path(root).resolve()
    if not (root / ".git").exists():
        return ""
    if not env.dvc_experiment():
        paths = [_relative(root, p) for p in Workdir(root).pipeline_files]
        _commit(root, message, paths)
    return _git(root, "rev-parse", "--verify", "-q", "HEAD", check=False).strip()


def track(root: Path | str, dataset_dir: Path | str) -> DataVersion:
    """`dvc add` a dataset folder and commit its .dvc file; returns the new data version."""
    root = Path(root).resolve()
    rel = _relative(root, dataset_dir)
    _dvc(root, "add", rel)  # not -q: it also silences errors
    parent = Path(rel).parent
    _commit(root, f"xfer: track {rel}", [f"{rel}.dvc", (parent / ".gitignore").as_posix()])
    return data_version(root, dataset_dir)


def data_version(root: Path | str, dataset_dir: Path | str) -> DataVersion:
    """The data version recorded in `<dataset_dir>.dvc` (no DVC call, just the file and git)."""
    root = Path(root).resolve()
    rel = _relative(root, dataset_dir)
    dvc_file = root / f"{rel}.dvc"
    if not dvc_file.exists():
        raise VersioningError(
            f"{dvc_file} does not exist; track the dataset first (`xfer ingest` does)"
        )
    outs = (yaml.safe_load(dvc_file.read_text()) or {}).get("outs") or [{}]
    md5 = outs[0].get("md5")
    if not md5:
        raise VersioningError(f"{dvc_file} has no outs[0].md5; re-run `dvc add {rel}`")
    rev = _git(root, "log", "-1", "--format=%H", "--", f"{rel}.dvc", check=False).strip()
    dirty = _git(root, "status", "--porcelain", "--", f"{rel}.dvc", check=False).strip()
    return DataVersion(md5=str(md5), git_rev="" if dirty else rev, path=rel)


def push(
    root: Path | str, targets: Sequence[Path | str] = (), retries: int = 3, backoff: float = 1.0
) -> None:
    """`dvc push` (all tracked data, or `targets`), retrying transient failures with backoff."""
    root = Path(root).resolve()
    _with_retries(root, ["push", *[_relative(root, t) for t in targets]], retries, backoff)


def pull(
    root: Path | str, targets: Sequence[Path | str] = (), retries: int = 3, backoff: float = 1.0
) -> None:
    """`dvc pull` (all tracked data, or `targets`) from the default remote."""
    root = Path(root).resolve()
    _with_retries(root, ["pull", *[_relative(root, t) for t in targets]], retries, backoff)


def remote_url(root: Path | str) -> str:
    """The URL of the default DVC remote ('' if none is configured)."""
    return _dvc(Path(root), "config", f"remote.{REMOTE_NAME}.url", check=False).strip()


def _with_retries(root: Path, args: list[str], retries: int, backoff: float) -> None:
    last = ""
    for attempt in range(max(1, retries)):
        proc = _run([_tool("dvc"), *args], root, check=False)
        if proc.returncode == 0:
            return
        last = _first_error(proc.stderr or proc.stdout)
        if attempt + 1 < retries:
            time.sleep(backoff * 2**attempt)
    raise VersioningError(
        f"dvc {args[0]} with remote {remote_url(root) or '(none)'} failed after {max(1, retries)} attempts: {last}"
    )


def _commit(root: Path, message: str, paths: list[str]) -> None:
    """Commit just these paths (others' staged work is left alone); no-op when unchanged."""
    existing = [p for p in paths if (root / p).exists()]
    if not existing:  # `git commit --` without paths would commit whatever else is staged
        return
    _git(root, "add", "--", *existing)
    if _run(
        [_tool("git"), "diff", "--cached", "--quiet", "--", *existing], root, check=False
    ).returncode:
        _git(root, "commit", "-q", "-m", message, "--", *existing)


def _ignore(root: Path, pattern: str) -> None:
    gitignore = root / ".gitignore"
    lines = gitignore.read_text().splitlines() if gitignore.exists() else []
    if pattern not in lines and pattern.lstrip("/") not in lines:
        atomic_write_text(gitignore, "\n".join([*lines, pattern]) + "\n")


def _relative(root: Path, path: Path | str) -> str:
    try:
        return Path(path).resolve().relative_to(root).as_posix()
    except ValueError:
        raise VersioningError(
            f"{path} is outside the repo {root}; keep datasets under the workdir"
        ) from None


def _tool(name: str) -> str:
    """The venv's own `dvc`/`git` first (next to this Python), then PATH."""
    local = Path(sys.executable).parent / name
    found = str(local) if local.exists() else shutil.which(name)
    if not found:
        raise VersioningError(
            f"`{name}` not found next to {sys.executable} or on PATH; install {name}"
        )
    return found


def _git(root: Path, *args: str, check: bool = True) -> str:
    return _run([_tool("git"), *args], root, check=check).stdout


def _dvc(root: Path, *args: str, check: bool = True) -> str:
    return _run([_tool("dvc"), *args], root, check=check).stdout


def _run(cmd: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, cwd=cwd, env=env.quiet_environ(), capture_output=True, text=True)
    if check and proc.returncode != 0:
        tool = Path(cmd[0]).name
        raise VersioningError(
            f"`{tool} {' '.join(cmd[1:3])}` failed in {cwd}: {_first_error(proc.stderr or proc.stdout)}"
        )
    return proc


def _first_error(text: str) -> str:
    """The first ERROR/fatal line; a full disk said in the words every other layer uses."""
    if "Out of diskspace" in text or "No space left on device" in text:
        return "No space left on device (in the work dir); free disk space and run it again"
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for ln in lines:
        if ln.startswith(("ERROR", "error:", "fatal:")):
            return ln
    return lines[0] if lines else "(no output)"
