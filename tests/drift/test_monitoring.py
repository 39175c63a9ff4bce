import multiprocessing as mp
from pathlib import Path

import pandas as pd
import pytest

from xferlib import monitoring

T0 = pd.Timestamp("2026-11-22 09:55", tz="UTC")


def rows(writer: int, n: int, start: pd.Timestamp = T0) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "image_id": [f"{writer}-{i}" for i in range(n)],
            "window_id": f"w{writer:02d}",
            "pred": [i % 10 for i in range(n)],
            "ts": [start + pd.Timedelta(seconds=20 * i) for i in range(n)],  # n=50 spans two hours
        }
    )


def _writer(root: str, writer: int, barrier) -> None:
    barrier.wait()  # all processes append at the same moment
    monitoring.append(root, rows(writer, 50))


def test_twenty_concurrent_process_appends_lose_no_rows(tmp_path: Path) -> None:
    ctx = mp.get_context("fork")
    barrier = ctx.Barrier(20)
    procs = [ctx.Process(target=_writer, args=(str(tmp_path), w, barrier)) for w in range(20)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0] * 20
    everything = monitoring.read_window(
        tmp_path, start=T0 - pd.Timedelta(hours=1), end=T0 + pd.Timedelta(hours=2)
    )
    assert len(everything) == 1000 and everything["image_id"].is_unique
    assert {p.parent.parent.name + "/" + p.parent.name for p in tmp_path.rglob("*.parquet")} == {
        "dt=2026-11-22/hour=09",
        "dt=2026-11-22/hour=10",
    }
    assert not [p for p in tmp_path.rglob("*") if p.name.startswith(".")]


def test_read_window_by_id_latest_last_n_and_time_range(tmp_path: Path) -> None:
    for w in range(3):
        monitoring.append(tmp_path, rows(w, 50, T0 + pd.Timedelta(hours=w)))
    assert set(monitoring.read_window(tmp_path, "w01")["image_id"]) == {f"1-{i}" for i in range(50)}
    latest = monitoring.read_window(tmp_path)
    assert (latest["window_id"] == "w02").all() and len(latest) == 50
    last = monitoring.read_window(tmp_path, last_n=70)
    assert (
        len(last) == 70
        and last["ts"].is_monotonic_increasing
        and last["image_id"].iloc[-1] == "2-49"
    )
    hour = monitoring.read_window(tmp_path, start="2026-11-22 10:00", end="2026-11-22 11:00")
    assert (
        len(hour) > 0
        and hour["ts"].between(T0 + pd.Timedelta(minutes=5), T0 + pd.Timedelta(minutes=65)).all()
    )
    assert len(monitoring.read_window(tmp_path, "nope")) == 0
    assert len(monitoring.read_window(tmp_path / "missing")) == 0


def test_rows_without_ts_are_stamped_and_naive_ts_is_utc(tmp_path: Path) -> None:
    monitoring.append(tmp_path, pd.DataFrame({"window_id": ["a"], "pred": [1]}))
    monitoring.append(
        tmp_path,
        pd.DataFrame({"window_id": ["b"], "pred": [2], "ts": [pd.Timestamp("2026-01-01 03:00")]}),
    )
    assert str(monitoring.read_window(tmp_path, "a")["ts"].dt.tz) == "UTC"
    assert (tmp_path / "dt=2026-01-01/hour=03").is_dir()


def test_s3_roots_go_through_xferlib_storage(monkeypatch: pytest.MonkeyPatch) -> None:
    from xferlib import storage

    objects: dict[str, bytes] = {}
    monkeypatch.setattr(storage, "write_bytes", lambda uri, data: objects.__setitem__(uri, data))
    monkeypatch.setattr(storage, "read_bytes", lambda uri: objects[uri])
    monkeypatch.setattr(
        storage, "list_uris", lambda prefix: sorted(u for u in objects if u.startswith(prefix))
    )
    written = monitoring.append("s3://bucket/log", rows(1, 50))
    assert len(written) == 2 and all(
        u.startswith("s3://bucket/log/dt=2026-11-22/hour=") for u in written
    )
    assert len(monitoring.read_window("s3://bucket/log", "w01")) == 50
    assert len(monitoring.read_window("s3://bucket/log", last_n=10)) == 10
