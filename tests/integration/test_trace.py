"""The per-hop trace through a real gateway, read from /_composer/api/ (boto3 never reaches it)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest

from composer.gateway import GatewayConfig, ThreadedGateway
from composer.gateway.trace import Trace
from tests.conftest import runtime_client_for
from tests.integration.test_gateway import Containers, _direct, _serial


@pytest.fixture(scope="module")
def containers() -> Iterator[Containers]:
    c = Containers().start(["echo", "record", "upper", "ctparams", "fail415", "fail500", "slow"])
    yield c
    c.stop()


def _get(url: str) -> tuple[int, Any]:
    async def get() -> tuple[int, Any]:
        async with aiohttp.ClientSession() as s, s.get(url) as r:
            return r.status, await r.json(content_type=None)

    return asyncio.run(get())


def _hops(gw: ThreadedGateway, **query: str) -> list[dict[str, Any]]:
    q = "&".join(f"{k}={v}" for k, v in query.items())
    status, doc = _get(f"{gw.url}/_composer/api/trace?{q}")
    assert status == 200
    hops: list[dict[str, Any]] = doc["hops"]
    return hops


def _direct_config(c: Containers) -> GatewayConfig:
    config = _direct(c, "trace-direct")
    return config


def test_direct_hop_is_recorded_with_its_fields_and_no_body(containers: Containers) -> None:
    with ThreadedGateway(_direct_config(containers)) as gw:
        client = runtime_client_for(gw.url)
        answer = client.invoke_endpoint(
            EndpointName="trace-direct",
            TargetContainerHostname="echo",
            Body=b"secret-payload",
            ContentType="text/csv",
            Accept="text/csv",
        )
        request_id = answer["ResponseMetadata"]["RequestId"]
        (hop,) = _hops(gw)
        assert hop["request_id"] == request_id
        assert (hop["endpoint"], hop["hostname"]) == ("trace-direct", "echo")
        assert (hop["content_type"], hop["accept"], hop["request_size"]) == (
            "text/csv",
            "text/csv",
            14,
        )
        assert (hop["status"], hop["response_content_type"], hop["response_size"]) == (
            200,
            "text/csv",
            14,
        )
        assert hop["latency_ms"] > 0
        assert "request_body" not in hop and "response_body" not in hop
        assert "secret-payload" not in str(_get(f"{gw.url}/_composer/api/trace")[1])


def test_a_hop_without_answer_has_no_status(containers: Containers) -> None:
    with ThreadedGateway(_direct_config(containers)) as gw:
        client = runtime_client_for(gw.url)
        with pytest.raises(client.exceptions.ModelError):
            client.invoke_endpoint(
                EndpointName="trace-direct", TargetContainerHostname="dead", Body=b"x"
            )
        (hop,) = _hops(gw)
        assert (hop["hostname"], hop["status"]) == ("dead", None)


def test_serial_hops_each_container_with_bodies_cut_when_asked(containers: Containers) -> None:
    trace = Trace(bodies=True, body_limit=5)
    with ThreadedGateway(_serial(containers, "trace-serial", "upper", "record"), trace=trace) as gw:
        client = runtime_client_for(gw.url)
        client.invoke_endpoint(
            EndpointName="trace-serial",
            Body=b"hello world",
            ContentType="text/plain",
            Accept="application/json",
        )
        first, second = _hops(gw)
        assert first["request_id"] == second["request_id"]
        assert (first["hostname"], first["accept"], first["request_body"]) == (
            "step-1",
            None,
            "hello",
        )
        assert first["response_content_type"].startswith("text/x-upper")
        assert first["response_body"] == "HELLO"
        assert (second["hostname"], second["content_type"]) == (
            "step-2",
            first["response_content_type"],
        )
        assert (second["accept"], second["request_body"], second["request_size"]) == (
            "application/json",
            "HELLO",
            11,
        )


def test_the_buffer_is_bounded_and_limit_applies(containers: Containers) -> None:
    with ThreadedGateway(_direct_config(containers), trace=Trace(maxlen=4)) as gw:
        client = runtime_client_for(gw.url)
        for n in range(10):
            client.invoke_endpoint(
                EndpointName="trace-direct", TargetContainerHostname="echo", Body=str(n)
            )
        assert [h["request_size"] for h in _hops(gw)] == [1] * 4
        assert len(_hops(gw, limit="2")) == 2
        status, _ = _get(f"{gw.url}/_composer/api/trace?limit=x")
        assert status == 400


def test_streaming_hop_is_recorded(containers: Containers) -> None:
    with ThreadedGateway(_direct_config(containers)) as gw:
        client = runtime_client_for(gw.url)
        answer = client.invoke_endpoint_with_response_stream(
            EndpointName="trace-direct",
            TargetContainerHostname="echo",
            Body=b"abc",
            ContentType="text/plain",
        )
        list(answer["Body"])
        (hop,) = _hops(gw)
        assert (hop["hostname"], hop["status"], hop["request_size"]) == ("echo", 200, 3)
        assert hop["request_id"] == answer["ResponseMetadata"]["RequestId"]


def test_endpoints_are_listed(containers: Containers) -> None:
    with ThreadedGateway(_direct_config(containers)) as gw:
        status, doc = _get(f"{gw.url}/_composer/api/endpoints")
        assert status == 200
        (ep,) = doc["endpoints"]
        assert (ep["name"], ep["mode"], ep["instance"]) == ("trace-direct", "Direct", "local-1")
        assert ep["containers"][0] == {
            "hostname": "echo",
            "url": containers.urls["echo"],
            "up": True,
            "log_path": "/tmp/logs/echo.log",
            "log_stream_arn": "arn:aws:logs:eu-west-1:123456789012:log-group:"
            "/aws/sagemaker/Endpoints/trace-direct:log-stream:AllTraffic/local-1/echo",
        }
