"""The monitoring log: scored rows as Parquet, partitioned by hour, safe under concurrent writers.

Layout under the root (a local directory or an `s3://bucket/prefix`):
`dt=YYYY-MM-DD/hour=HH/part-<uuid>.parquet`, partitioned by each row's `ts` (UTC). Every append
writes new files only, never rewrites one, so concurrent writers cannot lose each other's rows.
Locally a part is written through `xferlib.atomic` (hidden temporary file, fsync, rename: readers
never see a half-written file); on S3 a PUT is already all-or-nothing. Both back ends share
everything but `_Store`'s three methods; `xferlib.storage` (boto3) is imported only for s3:// roots.
"""

from __future__ import annotations

import io
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pandas as pd

from xferlib.atomic import atomic_write_bytes

TS = "ts"
_PART = "part-"


@dataclass(frozen=True)
class _Store:
    root: str

    @property
    def is_s3(self) -> bool:
        return self.root.startswith("s3://")

    def write(self, rel: str, data: bytes) -> str:
        uri = f"{self.root.rstrip('/')}/{rel}"
        if self.is_s3:
            from xferlib import storage

            storage.write_bytes(uri, data)
            return uri
        path = Path(uri)
        # the temporary file is hidden and ends .tmp, so parts() never lists it
        atomic_write_bytes(path, data)
        return str(path)

    def read(self, uri: str) -> bytes:
        if self.is_s3:
            from xferlib import storage

            return storage.read_bytes(uri)
        return Path(uri).read_bytes()

    def parts(self) -> list[str]:
        """Every finished part file, oldest partition first."""
        if self.is_s3:
            from xferlib import storage

            uris = storage.list_uris(self.root.rstrip("/") + "/")
        else:
            root = Path(self.root)
            uris = [str(p) for p in root.glob("dt=*/hour=*/*.parquet")] if root.is_dir() else []
        return sorted(
            u for u in uris if u.rsplit("/", 1)[-1].startswith(_PART) and u.endswith(".parquet")
        )


def _partition(uri: str) -> str:
    """'dt=2026-11-22/hour=09' of a part's URI (sorts chronologically)."""
    parts = uri.replace("\\", "/").split("/")
    return f"{parts[-3]}/{parts[-2]}"


def _utc(ts: pd.Series | datetime | str) -> pd.Series | pd.Timestamp:
    out = pd.to_datetime(ts)
    if isinstance(out, pd.Series):
        return out.dt.tz_localize("UTC") if out.dt.tz is None else out.dt.tz_convert("UTC")
    return out.tz_localize("UTC") if out.tzinfo is None else out.tz_convert("UTC")


def append(root: str | Path, frame: pd.DataFrame) -> list[str]:
    """Append scored rows; rows without a `ts` column are stamped now (UTC). Returns the parts written."""
    if len(frame) == 0:
        return []
    frame = frame.reset_index(drop=True)
    frame = frame.assign(**{TS: _utc(frame[TS]) if TS in frame else pd.Timestamp.now(tz="UTC")})
    store = _Store(str(root))
    keys = frame[TS].dt.strftime("dt=%Y-%m-%d/hour=%H")
    written = []
    for key, rows in frame.groupby(keys, sort=True):
        buf = io.BytesIO()
        rows.reset_index(drop=True).to_parquet(buf, index=False)
        written.append(store.write(f"{key}/{_PART}{uuid.uuid4().hex}.parquet", buf.getvalue()))
    return written


def _read(store: _Store, uris: list[str]) -> pd.DataFrame:
    frames = [pd.read_parquet(io.BytesIO(store.read(u))) for u in uris]
    frames = [f for f in frames if len(f)]
    if not frames:
        return pd.DataFrame()
    return (
        pd.concat(frames, ignore_index=True).sort_values(TS, kind="stable").reset_index(drop=True)
    )


def _by_partition_newest_first(uris: list[str]) -> list[list[str]]:
    groups: dict[str, list[str]] = {}
    for u in uris:
        groups.setdefault(_partition(u), []).append(u)
    return [groups[k] for k in sorted(groups, reverse=True)]


def read_window(
    root: str | Path,
    window_id: str | None = None,
    *,
    last_n: int | None = None,
    start: datetime | str | None = None,
    end: datetime | str | None = None,
) -> pd.DataFrame:
    """Rows of one window, sorted by ts. Pick it by `window_id`, or the latest `last_n` rows, or a
    time range [start, end); with none of these, the most recent window_id in the log."""
    store = _Store(str(root))
    uris = store.parts()
    if start is not None or end is not None:
        return _time_range(store, uris, start, end)
    if last_n is not None:
        return _last_rows(store, uris, last_n)
    return _one_window(store, uris, window_id)


def _time_range(store: _Store, uris: list[str], start: object, end: object) -> pd.DataFrame:
    lo = _utc(start) if start is not None else None  # type: ignore[arg-type]
    hi = _utc(end) if end is not None else None  # type: ignore[arg-type]
    keep = [
        u for u in uris
        if (lo is None or _partition(u) >= lo.strftime("dt=%Y-%m-%d/hour=%H"))
        and (hi is None or _partition(u) <= hi.strftime("dt=%Y-%m-%d/hour=%H"))
    ]  # fmt: skip
    rows = _read(store, keep)
    if len(rows) == 0:
        return rows
    mask = pd.Series(True, index=rows.index)
    if lo is not None:
        mask &= rows[TS] >= lo
    if hi is not None:
        mask &= rows[TS] < hi
    return rows[mask].reset_index(drop=True)


def _last_rows(store: _Store, uris: list[str], n: int) -> pd.DataFrame:
    taken: list[str] = []
    count = 0
    for group in _by_partition_newest_first(uris):  # newest hours first, stop once we have n
        taken += group
        count += sum(len(pd.read_parquet(io.BytesIO(store.read(u)), columns=[TS])) for u in group)
        if count >= n:
            break
    return _read(store, taken).tail(n).reset_index(drop=True)


def _one_window(store: _Store, uris: list[str], window_id: str | None) -> pd.DataFrame:
    """A window's rows; windows are contiguous in time, so the scan stops after the window ends."""
    found: list[pd.DataFrame] = []
    for group in _by_partition_newest_first(uris):
        rows = _read(store, group)
        if window_id is None and len(rows):
            window_id = str(rows["window_id"].iloc[-1]) if "window_id" in rows else None
            if window_id is None:
                raise ValueError(
                    "the monitoring log has no window_id column; read it with last_n= or start=/end="
                )
        hit = (
            rows[rows["window_id"].astype(str) == window_id]
            if len(rows) and "window_id" in rows
            else rows.iloc[:0]
        )
        if len(hit):
            found.append(hit)
        elif found:
            break
    if not found:
        return pd.DataFrame()
    return (
        pd.concat(found[::-1], ignore_index=True)
        .sort_values(TS, kind="stable")
        .reset_index(drop=True)
    )
