"""Small JSON documents that every worker shares, changed by compare-and-swap.

The root is a local directory or an `s3://bucket/prefix` (the same two back ends as the monitoring
log). One document per key, `<root>/<key>.json`. A change is read -> modify -> conditional write:
on S3 the write carries the ETag it read (`If-Match`, or `If-None-Match: *` to create), locally
the compare and the atomic rename run under an exclusive `flock` on `<root>/.lock` (and `update`
holds it from its read to its write). A writer that lost a race on S3 re-reads and applies its
change again, so concurrent workers never overwrite each other and a reader never sees half a
document. Transient S3 errors are retried by botocore
(`xferlib.storage`); a lost race is retried here, `attempts` times.
"""

from __future__ import annotations

import contextlib
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xferlib.atomic import atomic_write_bytes, exclusive_lock, sha256_bytes

Doc = dict[str, Any]
_SUFFIX = ".json"


class ConflictError(RuntimeError):
    """A document kept changing under us for every attempt (a hot key or a stuck writer)."""


@dataclass(frozen=True)
class DocStore:
    root: str

    @property
    def is_s3(self) -> bool:
        return self.root.startswith("s3://")

    def _uri(self, key: str) -> str:
        if not key or "/" in key or key.startswith("."):
            raise ValueError(f"document key {key!r} must be a plain name (no '/', no leading '.')")
        return f"{self.root.rstrip('/')}/{key}{_SUFFIX}"

    def get(self, key: str) -> tuple[Doc, str] | None:
        """The document and its version token, or None when there is none."""
        uri = self._uri(key)
        if self.is_s3:
            from xferlib import storage

            try:
                data, etag = storage.read_with_etag(uri)
            except storage.ObjectNotFound:
                return None
            return json.loads(data), etag
        path = Path(uri)
        if not path.exists():
            return None
        data = path.read_bytes()
        return json.loads(data), sha256_bytes(data)

    def put(self, key: str, doc: Doc, token: str | None) -> bool:
        """Write `doc` if the stored version is still `token` (None: only if there is none yet).
        False when another writer changed it first."""
        uri = self._uri(key)
        data = json.dumps(doc, indent=2, sort_keys=True, default=str).encode()
        if self.is_s3:
            from xferlib import storage

            try:
                return storage.write_if(uri, data, token)
            except storage.ObjectNotFound:  # If-Match on a key that is gone
                return False
        with self._locked():
            path = Path(uri)
            current = sha256_bytes(path.read_bytes()) if path.exists() else None
            if current != token:
                return False
            atomic_write_bytes(path, data)
            return True

    def update(self, key: str, change: Callable[[Doc | None], Doc], attempts: int = 30) -> Doc:
        """Apply `change` (old document or None -> new document) until it lands; the new document.
        `change` may raise to refuse (nothing is written).

        Locally the read, the change and the write all run under the folder's lock, so a change
        never has to be retried. On S3 a lost race is retried after a jittered, growing pause
        (without one, eight busy writers on a loaded machine starved each other of 20 attempts)."""
        if not self.is_s3:
            with self._locked():
                got = self.get(key)
                new = change(got[0] if got else None)
                data = json.dumps(new, indent=2, sort_keys=True, default=str).encode()
                atomic_write_bytes(Path(self._uri(key)), data)
                return new
        for attempt in range(attempts):
            got = self.get(key)
            new = change(got[0] if got else None)
            if self.put(key, new, got[1] if got else None):
                return new
            time.sleep(random.random() * min(1.0, 0.02 * 2**attempt))
        raise ConflictError(
            f"document {key} in {self.root} changed under every one of {attempts} attempts; "
            "retry, and look for a writer stuck in a loop"
        )

    def keys(self) -> list[str]:
        """Every document's key, sorted."""
        prefix = self.root.rstrip("/") + "/"
        if self.is_s3:
            from xferlib import storage

            names = [u[len(prefix) :] for u in storage.list_uris(prefix)]
        else:
            root = Path(self.root)
            names = [p.name for p in root.glob(f"*{_SUFFIX}")] if root.is_dir() else []
        return sorted(
            n[: -len(_SUFFIX)]
            for n in names
            if n.endswith(_SUFFIX) and "/" not in n and not n.startswith(".")
        )

    def _locked(self) -> contextlib.AbstractContextManager[None]:
        return exclusive_lock(Path(self.root) / ".lock")
