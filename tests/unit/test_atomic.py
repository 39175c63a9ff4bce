"""xferlib.atomic: a durable file is written whole or not at all, and hashed one way."""

from __future__ import annotations

import hashlib
import multiprocessing as mp
import os
import time
from pathlib import Path

import pytest

from xferlib.atomic import (
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    atomic_writer,
    sha256_bytes,
    sha256_file,
)

PAYLOAD_BYTES = 4 << 20  # big enough that a plain write is visibly torn (several write() calls)


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_an_exception_inside_the_writer_keeps_the_old_file_and_leaves_no_temp_file(
    tmp_path: Path,
) -> None:
    target = tmp_path / "model.pt"
    target.write_bytes(b"old weights")
    with pytest.raises(RuntimeError, match="disk full"), atomic_writer(target) as f:
        f.write(b"half of the new wei")
        raise RuntimeError("disk full")
    assert target.read_bytes() == b"old weights"
    assert _leftovers(tmp_path) == []


def test_a_failed_first_write_creates_no_file(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "state.json"
    with pytest.raises(KeyboardInterrupt), atomic_writer(target, "w") as f:
        f.write("{")
        raise KeyboardInterrupt
    assert not target.exists()
    assert _leftovers(tmp_path / "sub") == []


def test_a_clean_exit_replaces_the_file_and_its_temp_file_is_a_hidden_sibling(
    tmp_path: Path,
) -> None:
    target = tmp_path / "part-1.parquet"
    target.write_bytes(b"old")
    with atomic_writer(target) as f:
        f.write(b"new")
        (tmp,) = _leftovers(tmp_path)
        assert tmp.startswith(".part-1.parquet.")  # hidden: globs like part-*.parquet skip it
        assert target.read_bytes() == b"old"  # nothing visible before the block ends
    assert target.read_bytes() == b"new"
    assert _leftovers(tmp_path) == []


def test_text_and_json_helpers_round_trip(tmp_path: Path) -> None:
    atomic_write_text(tmp_path / "a.txt", "héllo\n")
    assert (tmp_path / "a.txt").read_text(encoding="utf-8") == "héllo\n"
    atomic_write_json(tmp_path / "a.json", {"path": tmp_path, "n": 1})
    assert (tmp_path / "a.json").read_text() == f'{{\n  "path": "{tmp_path}",\n  "n": 1\n}}'
    atomic_write_bytes(tmp_path / "a.bin", b"\x00\x01")
    assert (tmp_path / "a.bin").read_bytes() == b"\x00\x01"


def test_only_binary_or_text_write_modes_are_accepted(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="'wb' or 'w'"), atomic_writer(tmp_path / "x", "ab"):
        pass


def _writer(path: str, fill: int, rounds: int) -> None:
    payload = bytes([fill]) * PAYLOAD_BYTES
    for _ in range(rounds):
        atomic_write_bytes(path, payload)


def test_concurrent_writers_never_produce_a_torn_file(tmp_path: Path) -> None:
    """Two processes rewrite one file with distinct 4 MiB payloads; every read sees one whole payload.

    (With a plain `Path.write_bytes` in `_writer` this fails within a few reads: checked by hand.)"""
    target = tmp_path / "shared.bin"
    atomic_write_bytes(target, b"\x01" * PAYLOAD_BYTES)
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(str(target), b, 15)) for b in (1, 2)]
    for p in procs:
        p.start()
    reads, seen = 0, set()
    deadline = time.monotonic() + 120
    while any(p.is_alive() for p in procs) and time.monotonic() < deadline:
        data = target.read_bytes()
        assert len(data) == PAYLOAD_BYTES, f"torn read: {len(data)} bytes"
        assert data.count(data[:1]) == PAYLOAD_BYTES, "torn read: two payloads mixed"
        seen.add(data[0])
        reads += 1
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert reads > 0
    assert target.read_bytes()[0] in (1, 2)
    assert _leftovers(tmp_path) == []


def test_sha256_file_equals_hashlib_on_a_multi_mib_file(tmp_path: Path) -> None:
    data = os.urandom(5 * (1 << 20) + 123)  # not a multiple of the 1 MiB read size
    path = tmp_path / "weights.bin"
    path.write_bytes(data)
    expected = hashlib.sha256(data).hexdigest()
    assert sha256_file(path) == expected == sha256_bytes(data)
    assert sha256_file(path) != sha256_bytes(data[:-1])
