"""Incidents: the lifecycle's legal moves, timestamps per state, and a store that concurrent
workers share without losing each other's changes (compare-and-swap on a local folder)."""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path

import pytest

from xferlib.docstore import DocStore
from xferlib.labels.incidents import IllegalTransition, IncidentStore, UnknownIncident, advance


def test_an_incident_walks_its_lifecycle_with_a_timestamp_per_state(tmp_path: Path) -> None:
    store = IncidentStore(str(tmp_path / "incidents"))
    inc, opened = store.open_or_join("m", "1", "w1", "r1")
    assert opened and inc.state == "open" and inc.windows == ("w1",)
    for state in ("labels_requested", "labels_arriving", "labels_arriving", "retraining"):
        inc = store.transition(inc.id, state, f"to {state}")
    inc = store.transition(inc.id, "promoted", challenger_version="2")
    inc = store.transition(inc.id, "closed")
    states = [t["state"] for t in store.get(inc.id).timeline]
    assert states == [
        "open", "labels_requested", "labels_arriving", "labels_arriving", "retraining",
        "promoted", "closed",
    ]  # fmt: skip
    assert all(t["at"] for t in store.get(inc.id).timeline)
    assert store.get(inc.id).challenger_version == "2"


def test_an_illegal_transition_is_one_line_naming_the_valid_next_states(tmp_path: Path) -> None:
    store = IncidentStore(str(tmp_path))
    inc, _ = store.open_or_join("m", "1", "w1", "r1")
    with pytest.raises(IllegalTransition) as err:
        store.transition(inc.id, "promoted")
    msg = str(err.value)
    assert "\n" not in msg and "open to promoted" in msg and "labels_requested" in msg
    assert store.get(inc.id).state == "open"  # nothing written
    closed = store.transition(inc.id, "closed")
    with pytest.raises(IllegalTransition, match="it is closed"):
        advance(closed, "open")
    with pytest.raises(IllegalTransition, match="unknown incident state 'done'"):
        advance(closed, "done")
    with pytest.raises(UnknownIncident, match="xfer incidents"):
        store.get("inc-nope")


def test_drift_while_an_incident_is_active_joins_it_and_a_closed_one_opens_anew(
    tmp_path: Path,
) -> None:
    store = IncidentStore(str(tmp_path))
    first, _ = store.open_or_join("m", "1", "w1", "r1")
    joined, opened = store.open_or_join("m", "1", "w2", "r2")
    assert not opened and joined.id == first.id
    assert joined.windows == ("w1", "w2") and joined.drift_reports == ("r1", "r2")
    other, opened = store.open_or_join("other-model", "3", "w9", "r9")
    assert opened and other.id != first.id  # one active incident per model
    store.transition(first.id, "closed")
    again, opened = store.open_or_join("m", "1", "w3", "r3")
    assert opened and again.id != first.id
    assert store.find_by_report("r2").id == first.id  # type: ignore[union-attr]
    assert {i.id for i in store.all()} == {first.id, other.id, again.id}


def test_concurrent_workers_never_lose_each_others_changes(tmp_path: Path) -> None:
    """Eight threads each add 20 windows to one incident by read-modify-write: all 160 land."""
    store = IncidentStore(str(tmp_path))
    inc, _ = store.open_or_join("m", "1", "", "r0")

    def worker(k: int) -> None:
        mine = IncidentStore(str(tmp_path))  # each worker its own handle on the shared folder
        for i in range(20):
            mine.change(inc.id, lambda cur, w=f"w{k}-{i}": replace(cur, windows=(*cur.windows, w)))

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(store.get(inc.id).windows) == 160


def test_a_stale_write_is_refused_and_a_document_is_never_half_written(tmp_path: Path) -> None:
    docs = DocStore(str(tmp_path))
    assert docs.put("a", {"n": 1}, None)
    assert not docs.put("a", {"n": 2}, None)  # create-only, but it exists
    _, token = docs.get("a")  # type: ignore[misc]
    assert docs.put("a", {"n": 3}, token)
    assert not docs.put("a", {"n": 4}, token)  # the token is stale now
    assert docs.get("a")[0] == {"n": 3}  # type: ignore[index]
    assert docs.keys() == ["a"] and not list(tmp_path.glob("*.tmp"))
