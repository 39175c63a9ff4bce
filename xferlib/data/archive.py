"""Safe extraction of the archives `xfer ingest` accepts (.zip, .tar, .tar.gz/.tgz, .tar.bz2, .tar.xz).

An archive is untrusted input like any image: a member named `../x`, `/etc/x` or `C:\\x` would
write outside the extraction folder (zip-slip), and a symlink, hard link or device member would
make a later read leave it. Only regular files with a clean relative name are written, each read
with a size cap; every other member is returned as rejected (with a reason) so the caller can
quarantine it while the rest of the archive is ingested. `extractall` is never used.
"""

from __future__ import annotations

import functools
import re
import stat
import tarfile
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xferlib.data.validate import Rejected

ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
UNSAFE = "unsafe_archive_member"
_DRIVE = re.compile(r"^[A-Za-z]:")


@dataclass(frozen=True)
class Member:
    """One archive member: its name, its bytes (content, or the link target) and why it was refused."""

    name: str
    data: bytes | None
    rejected: Rejected | None = None


def is_archive(path: Path) -> bool:
    return path.is_file() and path.name.lower().endswith(ARCHIVE_SUFFIXES)


def extract(archive: Path, dest: Path, max_member_bytes: int) -> list[Member]:
    """Write the archive's safe regular files under `dest`; return the members that were refused."""
    dest = dest.resolve()
    refused = []
    for member in _members(archive, max_member_bytes):
        rejected = member.rejected or _write(dest, member)
        if rejected is not None:
            refused.append(Member(member.name, member.data, rejected))
    return refused


def unsafe_name(name: str) -> str | None:
    """Why a member name is unsafe to extract (None when it is a clean relative path)."""
    norm = name.replace("\\", "/")
    if "\x00" in norm:
        return "the name contains a NUL byte"
    if norm.startswith("/") or _DRIVE.match(norm):
        return "absolute path"
    parts = [p for p in norm.split("/") if p not in ("", ".")]
    if ".." in parts:
        return "'..' in the path leaves the archive"
    return None if parts else "empty name"


def _write(dest: Path, member: Member) -> Rejected | None:
    why = unsafe_name(member.name)
    if why is not None:
        return Rejected(UNSAFE, f"{why}: {member.name!r}")
    parts = [p for p in member.name.replace("\\", "/").split("/") if p not in ("", ".")]
    target = dest.joinpath(*parts)
    if not target.resolve().is_relative_to(dest):  # defence in depth; unsafe_name covers it
        return Rejected(UNSAFE, f"{member.name!r} resolves outside the extraction folder")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(member.data or b"")
    except OSError as exc:
        return Rejected(UNSAFE, f"{member.name!r} cannot be written ({exc.strerror or exc})")
    return None


def _members(archive: Path, cap: int) -> Iterator[Member]:
    name = archive.name.lower()
    try:
        if name.endswith(".zip"):
            yield from _zip_members(archive, cap)
        else:
            yield from _tar_members(archive, cap)
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as exc:
        raise ValueError(
            f"{archive} is not a readable archive ({type(exc).__name__}: {exc}); re-create it"
        ) from None


def _zip_members(archive: Path, cap: int) -> Iterator[Member]:
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            if info.is_dir():
                continue
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                target = zf.read(info)[:4096]
                detail = f"symlink {info.filename!r} -> {target.decode(errors='replace')!r}"
                yield Member(info.filename, target, Rejected(UNSAFE, detail))
            elif stat.S_IFMT(mode) and not stat.S_ISREG(mode):
                yield Member(
                    info.filename, None, Rejected(UNSAFE, f"special file {info.filename!r}")
                )
            else:
                yield _capped(info.filename, functools.partial(zf.open, info), cap)


def _tar_members(archive: Path, cap: int) -> Iterator[Member]:
    with tarfile.open(archive, "r:*") as tf:
        for m in tf:
            if m.isdir():
                continue
            if m.issym() or m.islnk():
                kind = "symlink" if m.issym() else "hard link"
                detail = f"{kind} {m.name!r} -> {m.linkname!r}"
                yield Member(m.name, m.linkname.encode(), Rejected(UNSAFE, detail))
            elif not m.isfile():
                yield Member(m.name, None, Rejected(UNSAFE, f"device or fifo {m.name!r}"))
            else:
                yield _capped(m.name, functools.partial(tf.extractfile, m), cap)


def _capped(name: str, opener: Callable[[], Any], cap: int) -> Member:
    """Read at most cap + 1 bytes: a member's declared size may lie (zip bombs)."""
    try:
        with opener() as fh:
            data = fh.read(cap + 1)
    except (zipfile.BadZipFile, tarfile.TarError, OSError, RuntimeError, EOFError) as exc:
        return Member(name, None, Rejected("unreadable", f"{type(exc).__name__}: {exc}"))
    if len(data) > cap:
        return Member(name, None, Rejected("too_large", f"member is larger than {cap} bytes"))
    return Member(name, data)
