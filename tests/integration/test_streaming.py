"""InvokeEndpointWithResponseStream and stateful sessions through the gateway, with unmodified
boto3, against tiny containers that stream chunk by chunk (aiohttp, on loopback)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from aiohttp import web
from botocore.exceptions import EventStreamError

from composer.gateway import GatewayConfig, ThreadedGateway, Upstream
from tests.conftest import runtime_client_for
from tests.integration.test_gateway import Containers
from tests.unit.test_eventstream import reference_decode

PART_DELAY = 0.05


def _chunks(request_body: dict[str, Any]) -> list[bytes]:
    return [f"part {i};".encode() for i in range(int(request_body.get("parts", 3)))]


async def streamer(request: web.Request) -> web.StreamResponse:
    """{"parts": N, "delay": s, "break_after": k, "hang_after": k, "status": n, "plain": true}."""
    doc = json.loads(await request.read() or b"{}")
    if "status" in doc:
        return web.Response(status=doc["status"], text="refused on purpose")
    chunks = _chunks(doc)
    if doc.get("plain"):
        return web.Response(body=b"".join(chunks), content_type="text/plain")
    response = web.StreamResponse(
        headers={"Content-Type": "application/jsonlines", "X-Amzn-SageMaker-Custom-Attributes": "c"}
    )
    response.enable_chunked_encoding()
    await response.prepare(request)
    for i, chunk in enumerate(chunks):
        if i == doc.get("break_after"):
            assert request.transport is not None
            request.transport.abort()  # the container dies mid-stream
            return response
        if i == doc.get("hang_after"):
            await asyncio.sleep(4)  # past the 2 s timeout; short, so the module ends soon
        await response.write(chunk)
        await asyncio.sleep(float(doc.get("delay", PART_DELAY)))
    await response.write_eof()
    return response


async def doubler(request: web.Request) -> web.Response:
    """A first Serial step: asks the next one for twice as many parts."""
    doc = json.loads(await request.read())
    return web.json_response({"parts": 2 * doc["parts"]})


def counter_app() -> web.Application:
    """A session container: NEW_SESSION opens, an id counts, {"close": true} closes."""
    counts: dict[str, int] = {}

    async def invocations(request: web.Request) -> web.Response:
        sid = request.headers.get("X-Amzn-SageMaker-Session-Id")
        doc = json.loads(await request.read() or b"{}")
        headers: dict[str, str] = {}
        if sid == "NEW_SESSION":
            sid = uuid.uuid4().hex
            counts[sid] = 0
            ttl = float(doc.get("ttl", 600))
            expires = (datetime.now(UTC) + timedelta(seconds=ttl)).strftime("%Y-%m-%dT%H:%M:%SZ")
            headers["X-Amzn-SageMaker-New-Session-Id"] = f"{sid}; Expires={expires}"
        elif sid is not None:
            counts[sid] += 1
            if doc.get("close"):
                headers["X-Amzn-SageMaker-Closed-Session-Id"] = sid
        answer = {"session": sid, "count": counts.get(sid or "", 0)}
        return web.json_response(answer, headers=headers)

    app = web.Application()
    app.router.add_post("/invocations", invocations)
    return app


def _app(handler: Any) -> web.Application:
    app = web.Application()
    app.router.add_post("/invocations", handler)
    return app


@pytest.fixture(scope="module")
def urls() -> Iterator[dict[str, str]]:
    c = Containers().start([])
    yield {
        "streamer": c.serve(_app(streamer)),
        "doubler": c.serve(_app(doubler)),
        "counter": c.serve(counter_app()),
    }
    c.stop()


@pytest.fixture(scope="module")
def direct(urls: dict[str, str]) -> Iterator[ThreadedGateway]:
    config = GatewayConfig(
        endpoint_name="stream-direct",
        mode="Direct",
        containers=(
            Upstream("streamer", urls["streamer"], invocation_timeout=2.0, log_path="/l/s.log"),
            Upstream("counter", urls["counter"]),
        ),
    )
    with ThreadedGateway(config) as gw:
        yield gw


@pytest.fixture(scope="module")
def serial(urls: dict[str, str]) -> Iterator[ThreadedGateway]:
    config = GatewayConfig(
        endpoint_name="stream-serial",
        mode="Serial",
        containers=(Upstream("first", urls["doubler"]), Upstream("last", urls["streamer"])),
    )
    with ThreadedGateway(config) as gw:
        yield gw


def _stream(gw: ThreadedGateway, body: dict[str, Any], **params: Any) -> dict[str, Any]:
    client = runtime_client_for(gw.url)
    answer: dict[str, Any] = client.invoke_endpoint_with_response_stream(
        EndpointName=gw.gateway.config.endpoint_name, Body=json.dumps(body).encode(), **params
    )
    return answer


def _parts(answer: dict[str, Any]) -> list[tuple[float, bytes]]:
    return [(time.monotonic(), e["PayloadPart"]["Bytes"]) for e in answer["Body"]]


def test_direct_streams_each_chunk_as_one_part_as_it_arrives(direct: ThreadedGateway) -> None:
    started = time.monotonic()
    answer = _stream(direct, {"parts": 8}, TargetContainerHostname="streamer", Accept="x/y")
    parts = _parts(answer)
    assert [p for _, p in parts] == _chunks({"parts": 8})  # neither cut nor joined
    assert parts[0][0] - started < parts[-1][0] - started - 5 * PART_DELAY
    assert answer["ContentType"] == "application/jsonlines"
    assert answer["InvokedProductionVariant"] == "AllTraffic"
    assert answer["CustomAttributes"] == "c"
    headers = answer["ResponseMetadata"]["HTTPHeaders"]
    assert headers["content-type"] == "application/vnd.amazon.eventstream"

    plain = runtime_client_for(direct.url).invoke_endpoint(
        EndpointName="stream-direct", TargetContainerHostname="streamer", Body=b'{"parts": 8}'
    )
    assert plain["Body"].read() == b"".join(p for _, p in parts)  # InvokeEndpoint: whole body


def test_a_plain_answer_is_one_part(direct: ThreadedGateway) -> None:
    parts = _parts(_stream(direct, {"parts": 4, "plain": True}, TargetContainerHostname="streamer"))
    assert [p for _, p in parts] == [b"".join(_chunks({"parts": 4}))]


def test_serial_buffers_all_but_the_last_which_streams(serial: ThreadedGateway) -> None:
    parts = _parts(_stream(serial, {"parts": 5}))
    assert [p for _, p in parts] == _chunks({"parts": 10})
    plain = runtime_client_for(serial.url).invoke_endpoint(
        EndpointName="stream-serial", Body=b'{"parts": 5}'
    )
    assert plain["Body"].read() == b"".join(p for _, p in parts)


def test_an_error_before_the_first_byte_is_a_model_error(direct: ThreadedGateway) -> None:
    client = runtime_client_for(direct.url)
    with pytest.raises(client.exceptions.ModelError) as info:
        _stream(direct, {"status": 503}, TargetContainerHostname="streamer")
    r = info.value.response
    assert r["OriginalStatusCode"] == 503
    assert r["OriginalMessage"] == "refused on purpose"


def test_a_container_dying_mid_stream_ends_it_with_stream_broken(direct: ThreadedGateway) -> None:
    answer = _stream(direct, {"parts": 6, "break_after": 2}, TargetContainerHostname="streamer")
    got = []
    with pytest.raises(EventStreamError) as info:
        for event in answer["Body"]:
            got.append(event["PayloadPart"]["Bytes"])
    assert got == _chunks({"parts": 2})
    assert info.value.response["Error"]["Code"] == "ModelStreamError"
    assert "broke off" in info.value.response["Error"]["Message"]
    raw = _raw(direct, {"parts": 6, "break_after": 2})
    assert raw[-1][0][":exception-type"] == "ModelStreamError"
    assert json.loads(raw[-1][1])["ErrorCode"] == "StreamBroken"


def test_a_timeout_mid_stream_is_model_invocation_time_exceeded(direct: ThreadedGateway) -> None:
    raw = _raw(direct, {"parts": 6, "hang_after": 1})
    assert [p for h, p in raw[:-1]] == _chunks({"parts": 1})
    headers, payload = raw[-1]
    assert headers[":message-type"] == "exception"
    error = json.loads(payload)
    assert error["ErrorCode"] == "ModelInvocationTimeExceeded"
    assert "2 s for the whole stream" in error["Message"]


def _raw(gw: ThreadedGateway, body: dict[str, Any]) -> list[tuple[dict[str, str], bytes]]:
    """The answer's bytes, decoded by the test's own reference decoder (not botocore's)."""
    r = requests.post(
        f"{gw.url}/endpoints/{gw.gateway.config.endpoint_name}/invocations-response-stream",
        data=json.dumps(body),
        headers={"X-Amzn-SageMaker-Target-Container-Hostname": "streamer"},
        timeout=30,
    )
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "application/vnd.amazon.eventstream"
    return reference_decode(r.content)


def test_stream_validation_errors(direct: ThreadedGateway) -> None:
    client = runtime_client_for(direct.url)
    for params, fragment in (
        ({}, "configured for direct invocation"),
        ({"TargetContainerHostname": "nope"}, "does not exist"),
        ({"TargetContainerHostname": "streamer", "SessionId": "NEW_SESSION"}, "cannot open"),
        ({"TargetContainerHostname": "streamer", "SessionId": "nope"}, "not an open session"),
    ):
        with pytest.raises(client.exceptions.ValidationError) as info:
            _stream(direct, {}, **params)
        assert fragment in info.value.response["Error"]["Message"]
    with pytest.raises(client.exceptions.ValidationError) as info:
        client.invoke_endpoint_with_response_stream(EndpointName="missing", Body=b"{}")
    assert "Endpoint missing of account" in info.value.response["Error"]["Message"]


# --- sessions ------------------------------------------------------------------------------------


def _counter(gw: ThreadedGateway, body: dict[str, Any] | None = None, **params: Any) -> Any:
    return runtime_client_for(gw.url).invoke_endpoint(
        EndpointName="stream-direct",
        TargetContainerHostname="counter",
        Body=json.dumps(body or {}).encode(),
        **params,
    )


def test_a_session_opens_is_used_and_closes(direct: ThreadedGateway) -> None:
    opened = _counter(direct, SessionId="NEW_SESSION")
    sid, _, expires = opened["NewSessionId"].partition("; Expires=")
    assert json.loads(opened["Body"].read()) == {"session": sid, "count": 0}
    assert datetime.strptime(expires, "%Y-%m-%dT%H:%M:%SZ").year >= 2024
    for n in (1, 2):
        used = _counter(direct, SessionId=sid)
        assert json.loads(used["Body"].read())["count"] == n
        assert "NewSessionId" not in used
    closed = _counter(direct, {"close": True}, SessionId=sid)
    assert closed["ClosedSessionId"] == sid
    client = runtime_client_for(direct.url)
    with pytest.raises(client.exceptions.ValidationError) as info:
        _counter(direct, SessionId=sid)
    assert f"Session {sid} is not an open session of endpoint stream-direct" in str(info.value)


def test_unknown_and_expired_session_ids_are_validation_errors(direct: ThreadedGateway) -> None:
    client = runtime_client_for(direct.url)
    with pytest.raises(client.exceptions.ValidationError) as info:
        _counter(direct, SessionId="never-opened")
    assert "never opened or has been closed" in str(info.value)
    sid = _counter(direct, {"ttl": 1}, SessionId="NEW_SESSION")["NewSessionId"].split(";")[0]
    time.sleep(2.1)  # Expires has whole seconds
    with pytest.raises(client.exceptions.ValidationError) as info:
        _counter(direct, SessionId=sid)
    assert "expired at" in str(info.value)


def test_streaming_may_use_an_open_session(direct: ThreadedGateway) -> None:
    sid = _counter(direct, SessionId="NEW_SESSION")["NewSessionId"].split(";")[0]
    parts = _parts(_stream(direct, {"parts": 2}, TargetContainerHostname="streamer", SessionId=sid))
    assert len(parts) == 2
    closing = _stream(direct, {"close": True}, TargetContainerHostname="counter", SessionId=sid)
    assert json.loads(b"".join(p for _, p in _parts(closing))) == {"session": sid, "count": 1}
    client = runtime_client_for(direct.url)
    with pytest.raises(client.exceptions.ValidationError, match="not an open session"):
        _counter(direct, SessionId=sid)  # the container closed it in a streamed answer


class _NoModels:
    """A multi-model container's model source that is never asked (streams cannot name one)."""

    async def prepare(self, target_model: str, name: str) -> str:
        raise AssertionError("a stream has no TargetModel to load")

    def release(self, name: str) -> None:
        raise AssertionError("nothing was loaded")


def test_a_multi_model_container_cannot_stream(urls: dict[str, str]) -> None:
    config = GatewayConfig(
        endpoint_name="stream-mme",
        mode="Serial",
        containers=(Upstream("models", urls["streamer"], model_source=_NoModels()),),
    )
    with ThreadedGateway(config) as gw:
        client = runtime_client_for(gw.url)
        with pytest.raises(client.exceptions.ValidationError) as info:
            client.invoke_endpoint_with_response_stream(EndpointName="stream-mme", Body=b"{}")
    message = info.value.response["Error"]["Message"]
    assert "cannot stream through multi-model container models" in message
    assert "no TargetModel" in message
