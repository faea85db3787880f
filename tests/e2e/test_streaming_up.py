"""InvokeEndpointWithResponseStream and stateful sessions under `sm-compose up`, unmodified boto3.

The shipped spaCy container streams a 200-paragraph document line by line, Direct and as the
last step of a Serial pipeline; a container killed mid-stream, or one past its invocation
timeout, ends the stream with ModelStreamError; containers/session-counter keeps a count per
session through open, use, close, an unknown and an expired id.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import EventStreamError

from .conftest import FAULTY, REPO, Up, running_up, write_pipeline
from .test_faults import serve_pid

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SPACY = {
    "build": str(REPO / "containers" / "spacy"),
    "model_data": str(REPO / "artifacts" / "spacy-model.tar.gz"),
}
SENTENCES = (
    "Apple is looking at buying U.K. startup for $1 billion.",
    "The food in Paris was wonderful, and the museums were even better.",
    "San Francisco considers banning sidewalk delivery robots.",
)
STREAM_TIMEOUT = 3.0


def paragraphs(count: int) -> list[str]:
    return [
        " ".join(SENTENCES[(i + j) % 3] for j in range(5)) + f" Part {i}." for i in range(count)
    ]


DOCUMENT = json.dumps({"texts": paragraphs(200)}).encode()


@pytest.fixture(scope="module")
def direct(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    folder = tmp_path_factory.mktemp("stream-direct")
    spec = {
        "name": "stream-direct",
        "mode": "Direct",
        "containers": [
            {"hostname": "spacy", **SPACY},
            {"hostname": "victim", "build": str(FAULTY)},
            {"hostname": "slow", "build": str(FAULTY), "invocation_timeout": STREAM_TIMEOUT},
            {"hostname": "counter", "build": str(REPO / "containers" / "session-counter")},
        ],
    }
    with running_up(write_pipeline(folder, spec)) as up:
        yield up


@pytest.fixture(scope="module")
def serial(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    folder = tmp_path_factory.mktemp("stream-serial")
    spec = {
        "name": "stream-serial",
        "containers": [{"hostname": "first", "build": str(FAULTY)}, {"hostname": "spacy", **SPACY}],
    }
    with running_up(write_pipeline(folder, spec)) as up:
        yield up


def _timed_parts(answer: dict[str, Any], started: float) -> list[tuple[float, bytes]]:
    return [(time.monotonic() - started, e["PayloadPart"]["Bytes"]) for e in answer["Body"]]


def _check_streams_the_document(up: Up, **target: str) -> None:
    client = up.client()
    call = {"EndpointName": up.name, "ContentType": "application/json", "Body": DOCUMENT}
    plain = client.invoke_endpoint(**call, Accept="application/jsonlines", **target)
    whole = plain["Body"].read()
    started = time.monotonic()
    answer = client.invoke_endpoint_with_response_stream(
        **call, Accept="application/jsonlines", **target
    )
    parts = _timed_parts(answer, started)
    assert answer["ContentType"] == "application/jsonlines"
    assert b"".join(p for _, p in parts) == whole
    assert len(parts) > 1
    first, last = parts[0][0], parts[-1][0]
    assert first < last / 2, f"first part at {first:.2f} s, the last at {last:.2f} s"
    lines = whole.decode().splitlines()
    assert len(lines) == 200 and json.loads(lines[0])["text"].endswith("Part 0.")


def test_spacy_streams_a_long_document_direct(direct: Up) -> None:
    _check_streams_the_document(direct, TargetContainerHostname="spacy")


def test_spacy_streams_as_the_last_step_of_a_serial_pipeline(serial: Up) -> None:
    _check_streams_the_document(serial)


def _stream_lines(up: Up, host: str, count: int, every: float) -> Iterator[dict[str, Any]]:
    """The faulty container's streamed lines, as boto3 yields them."""
    answer = up.client().invoke_endpoint_with_response_stream(
        EndpointName=up.name,
        TargetContainerHostname=host,
        ContentType="application/json",
        Body=json.dumps({"stream": count, "every": every}).encode(),
    )
    for event in answer["Body"]:
        yield json.loads(event["PayloadPart"]["Bytes"])


def test_killing_the_container_mid_stream_is_a_model_stream_error(direct: Up) -> None:
    lines = _stream_lines(direct, "victim", 30, 0.5)
    assert next(lines) == {"line": 0}
    os.kill(serve_pid(direct, "victim"), signal.SIGKILL)
    with pytest.raises(EventStreamError) as info:
        list(lines)
    assert info.value.response["Error"]["Code"] == "ModelStreamError"
    assert "victim" in info.value.response["Error"]["Message"]
    assert "broke off" in info.value.response["Error"]["Message"]


def test_a_stream_past_the_invocation_timeout_is_a_model_stream_error(direct: Up) -> None:
    got = []
    with pytest.raises(EventStreamError) as info:
        for line in _stream_lines(direct, "slow", 10, 1):
            got.append(line)
    assert 1 <= len(got) < 10
    assert info.value.response["Error"]["Code"] == "ModelStreamError"
    assert f"{STREAM_TIMEOUT:g} s for the whole stream" in info.value.response["Error"]["Message"]


def _count(up: Up, body: dict[str, Any], session: str) -> dict[str, Any]:
    answer: dict[str, Any] = up.client().invoke_endpoint(
        EndpointName=up.name,
        TargetContainerHostname="counter",
        ContentType="application/json",
        Body=json.dumps(body).encode(),
        SessionId=session,
    )
    answer["doc"] = json.loads(answer["Body"].read())
    return answer


def test_a_session_counter_opens_counts_and_closes(direct: Up) -> None:
    opened = _count(direct, {}, "NEW_SESSION")
    sid = opened["NewSessionId"].split(";")[0]
    assert opened["doc"] == {"session": sid, "count": 0}
    assert _count(direct, {"add": 2}, sid)["doc"]["count"] == 2
    assert _count(direct, {}, sid)["doc"]["count"] == 3
    other = _count(direct, {}, "NEW_SESSION")["NewSessionId"].split(";")[0]
    assert _count(direct, {}, other)["doc"]["count"] == 1  # sessions do not share counts
    closed = _count(direct, {"requestType": "CLOSE"}, sid)
    assert closed["ClosedSessionId"] == sid and closed["doc"]["count"] == 3
    client = direct.client()
    with pytest.raises(client.exceptions.ValidationError, match="not an open session"):
        _count(direct, {}, sid)


def test_unknown_and_expired_session_ids_are_validation_errors(direct: Up) -> None:
    client = direct.client()
    with pytest.raises(client.exceptions.ValidationError, match="never opened"):
        _count(direct, {}, "no-such-session")
    sid = _count(direct, {"ttl": 1}, "NEW_SESSION")["NewSessionId"].split(";")[0]
    time.sleep(2.1)
    with pytest.raises(client.exceptions.ValidationError, match="expired at"):
        _count(direct, {}, sid)


def test_streaming_uses_a_session_but_cannot_open_one(direct: Up) -> None:
    client = direct.client()
    sid = _count(direct, {}, "NEW_SESSION")["NewSessionId"].split(";")[0]
    call = {"EndpointName": direct.name, "TargetContainerHostname": "counter", "Body": b"{}"}
    answer = client.invoke_endpoint_with_response_stream(**call, SessionId=sid)
    parts = [e["PayloadPart"]["Bytes"] for e in answer["Body"]]
    assert json.loads(b"".join(parts)) == {"session": sid, "count": 1}
    with pytest.raises(client.exceptions.ValidationError, match="cannot open"):
        client.invoke_endpoint_with_response_stream(**call, SessionId="NEW_SESSION")
