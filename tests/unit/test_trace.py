"""The per-hop trace's ring buffer: bounded, bodies only when asked and cut, read as JSON."""

from __future__ import annotations

import pytest

from composer.gateway.trace import REQUEST_ID, Trace, as_json, line


def _hop(trace: Trace, n: int = 0, body: bytes = b"secret body") -> None:
    trace.record(
        "ep", f"c{n}", "text/csv", "application/json", body, 200, "text/plain", b"ok", 2, 1_500_000
    )


def test_the_buffer_is_bounded_and_keeps_the_newest() -> None:
    trace = Trace(maxlen=3)
    for n in range(10):
        _hop(trace, n)
    assert [as_json(h)["hostname"] for h in trace.recent()] == ["c7", "c8", "c9"]
    assert [as_json(h)["hostname"] for h in trace.recent(2)] == ["c8", "c9"]
    assert trace.recent(0) == []


def test_fields_and_no_bodies_by_default() -> None:
    trace = Trace()
    token = REQUEST_ID.set("req-1")
    try:
        _hop(trace)
    finally:
        REQUEST_ID.reset(token)
    doc = as_json(trace.recent()[0])
    assert doc["request_id"] == "req-1"
    assert (doc["endpoint"], doc["content_type"], doc["accept"]) == (
        "ep",
        "text/csv",
        "application/json",
    )
    assert (doc["request_size"], doc["status"], doc["response_size"]) == (11, 200, 2)
    assert doc["latency_ms"] == 1.5
    assert "request_body" not in doc and "response_body" not in doc
    assert "secret" not in line(trace.recent()[0])


def test_bodies_when_asked_are_cut() -> None:
    trace = Trace(bodies=True, body_limit=4)
    _hop(trace, body=b"abcdefgh")
    doc = as_json(trace.recent()[0])
    assert (doc["request_body"], doc["response_body"], doc["request_size"]) == ("abcd", "ok", 8)
    assert "'abcd'" in line(trace.recent()[0])


def test_each_hop_is_handed_to_on_hop_and_filtered_by_request() -> None:
    seen: list[str] = []
    trace = Trace(on_hop=lambda hop: seen.append(line(hop)))
    REQUEST_ID.set("r-a")
    _hop(trace, 1)
    REQUEST_ID.set("r-b")
    _hop(trace, 2)
    assert len(seen) == 2 and "ep/c1: text/csv 11 B" in seen[0] and "200 text/plain 2 B" in seen[0]
    assert [as_json(h)["hostname"] for h in trace.recent(request_id="r-b")] == ["c2"]


def test_a_trace_keeps_at_least_one_hop() -> None:
    with pytest.raises(ValueError, match="at least 1 hop; got maxlen=0"):
        Trace(maxlen=0)
