"""The inspector's routes on a real gateway: the page and its files, the metrics it charts, and
every `/_composer/` route refused to a peer that is not on the gateway's machine."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator

import aiohttp
import psutil
import pytest

from composer.gateway import GatewayConfig, ThreadedGateway
from tests.conftest import runtime_client_for
from tests.integration.test_gateway import Containers, _up

ROUTES = [
    "/_composer",
    "/_composer/",
    "/_composer/app.js",
    "/_composer/style.css",
    "/_composer/api/trace",
    "/_composer/api/endpoints",
    "/_composer/api/metrics",
]


@pytest.fixture(scope="module")
def containers() -> Iterator[Containers]:
    c = Containers().start(["echo", "fail500"])
    yield c
    c.stop()


def _config(c: Containers) -> GatewayConfig:
    return GatewayConfig(
        endpoint_name="inspected", mode="Direct", containers=(_up(c, "echo"), _up(c, "fail500"))
    )


def _get(url: str) -> tuple[int, dict[str, str], bytes]:
    async def get() -> tuple[int, dict[str, str], bytes]:
        async with (
            aiohttp.ClientSession() as s,
            s.get(url, allow_redirects=False) as r,
        ):
            return r.status, dict(r.headers), await r.read()

    return asyncio.run(get())


def test_the_page_and_its_files_are_served_with_a_same_origin_policy(
    containers: Containers,
) -> None:
    with ThreadedGateway(_config(containers)) as gw:
        status, headers, body = _get(f"{gw.url}/_composer/")
        assert status == 200 and headers["Content-Type"].startswith("text/html")
        assert b"/_composer/app.js" in body
        csp = headers["Content-Security-Policy"]
        assert "default-src 'none'" in csp and "connect-src 'self'" in csp
        for name, kind in (("app.js", "text/javascript"), ("style.css", "text/css")):
            status, headers, _ = _get(f"{gw.url}/_composer/{name}")
            assert status == 200 and headers["Content-Type"].startswith(kind), name
        status, headers, _ = _get(f"{gw.url}/_composer")
        assert (status, headers["Location"]) == (302, "/_composer/")
        for missing in ("/_composer/nope.js", "/_composer/..%2fapi.py", "/_composer/api"):
            status, headers, _ = _get(f"{gw.url}{missing}")
            assert status == 404, missing
            assert headers["x-amzn-ErrorType"] == "UnknownOperationException"


def test_metrics_count_each_containers_invocations_errors_and_latency(
    containers: Containers,
) -> None:
    with ThreadedGateway(_config(containers)) as gw:
        client = runtime_client_for(gw.url)
        for _ in range(3):
            client.invoke_endpoint(
                EndpointName="inspected", TargetContainerHostname="echo", Body=b"x"
            )
        with pytest.raises(client.exceptions.ModelError):
            client.invoke_endpoint(
                EndpointName="inspected", TargetContainerHostname="fail500", Body=b"x"
            )

        async def get() -> dict[str, dict[str, object]]:
            async with (
                aiohttp.ClientSession() as s,
                s.get(f"{gw.url}/_composer/api/metrics") as r,
            ):
                doc = await r.json()
            return {m["container"]: m for m in doc["containers"]}

        found = asyncio.run(get())
        echo, failing = found["echo"], found["fail500"]
        assert (echo["endpoint"], echo["variant"]) == ("inspected", "AllTraffic")
        assert (echo["invocations"], echo["errors_4xx"], echo["errors_5xx"]) == (3, 0, 0)
        assert (failing["invocations"], failing["errors_5xx"]) == (1, 1)
        latency = echo["latency_ms"]
        assert isinstance(latency, dict) and latency["count"] == 3
        assert 0 < latency["p50"] <= latency["p90"] <= latency["p99"]


def _address_beyond_loopback() -> str | None:
    for addresses in psutil.net_if_addrs().values():
        for a in addresses:
            if a.family == socket.AF_INET and not a.address.startswith("127."):
                return str(a.address)
    return None


def test_every_composer_route_refuses_a_peer_beyond_loopback(containers: Containers) -> None:
    address = _address_beyond_loopback()
    if address is None:
        pytest.skip("this machine has no IPv4 address besides loopback")
    with ThreadedGateway(_config(containers), host="0.0.0.0") as gw:
        port = gw.gateway.port
        for route in ROUTES:
            status, _, _ = _get(f"http://127.0.0.1:{port}{route}")
            assert status in (200, 302), route  # from this machine's loopback: answered
            status, _, body = _get(f"http://{address}:{port}{route}")
            assert status == 403, route  # the peer is this machine's own non-loopback address
            assert b"answers clients on the gateway's machine only" in body, route
            assert b"<html" not in body, route
        # SageMaker's own paths still answer that peer: only /_composer/ is ours
        status, _, _ = _get(f"http://{address}:{port}/ping")
        assert status == 200
