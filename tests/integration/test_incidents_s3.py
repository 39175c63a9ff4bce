"""The incident store on S3 (moto's real HTTP server): conditional PUTs keep concurrent workers
from overwriting each other, exactly as the local folder's lock does."""

from __future__ import annotations

from dataclasses import replace

from xferlib.docstore import DocStore
from xferlib.labels.incidents import IncidentStore


def test_s3_conditional_writes_refuse_a_stale_token_and_a_second_create(s3_bucket: str) -> None:
    docs = DocStore(f"s3://{s3_bucket}/incidents")
    assert docs.put("a", {"n": 1}, None)
    assert not docs.put("a", {"n": 2}, None)  # If-None-Match: * on an existing key
    _, etag = docs.get("a")  # type: ignore[misc]
    assert docs.put("a", {"n": 3}, etag) and not docs.put("a", {"n": 4}, etag)
    assert docs.get("a")[0] == {"n": 3} and docs.keys() == ["a"]  # type: ignore[index]
    assert docs.get("missing") is None


def test_incidents_on_s3_open_join_and_move_through_conditional_writes(s3_bucket: str) -> None:
    """Two handles (two workers) on one prefix: the second joins the first's incident, and a
    change made through a stale read is re-applied on the fresh document, not lost. (The race
    itself is tested on the local store: moto's server checks If-Match and writes in two steps,
    where S3 does both atomically.)"""
    root = f"s3://{s3_bucket}/incidents"
    one, two = IncidentStore(root), IncidentStore(root)
    inc, opened = one.open_or_join("m", "1", "w0", "r0")
    joined, again = two.open_or_join("m", "1", "w1", "r1")
    assert opened and not again and joined.id == inc.id
    stale = one.docs.get(inc.id)
    two.transition(inc.id, "labels_requested")
    assert stale is not None and not one.docs.put(inc.id, stale[0], stale[1])  # refused
    moved = one.change(inc.id, lambda cur: replace(cur, windows=(*cur.windows, "w2")))
    assert moved.state == "labels_requested" and moved.windows == ("w0", "w1", "w2")
