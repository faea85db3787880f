"""The local gateway against real tiny upstream servers, called by an unmodified boto3 client."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from composer.client import EndpointClient, InvokeResult
from composer.client import ModelError as ClientModelError
from composer.client import ValidationError as ClientValidationError
from composer.gateway import GatewayConfig, ThreadedGateway, Upstream
from composer.gateway import errors as gw_errors
from composer.gateway.app import aiohttp_response
from composer.gateway.metrics import GatewayMetrics
from composer.runners.contract import free_port
from tests.conftest import runtime_client_for

LIMIT = 6291456
CUSTOM = "X-Amzn-SageMaker-Custom-Attributes"


# --- fake containers ---------------------------------------------------------------------------


class Containers:
    """Tiny aiohttp apps acting as containers, each on its own loopback port, in one thread."""

    def __init__(self) -> None:
        self.hits: Counter[str] = Counter()
        self.urls: dict[str, str] = {}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runners: list[web.AppRunner] = []

    def _app(self, kind: str) -> web.Application:
        async def ping(_: web.Request) -> web.Response:
            return web.Response()

        async def invocations(request: web.Request) -> web.StreamResponse:
            self.hits[kind] += 1
            body = await request.read()
            attrs = request.headers.get(CUSTOM)
            extra = {CUSTOM: f"seen={attrs}"} if attrs is not None else {}
            ctype = request.headers.get("Content-Type")
            if kind == "echo":
                return web.Response(
                    body=body,
                    headers={"Content-Type": ctype or "application/octet-stream", **extra},
                )
            if kind == "record":
                seen = {
                    "body": body.decode(),
                    "content_type": ctype,
                    "accept": request.headers.get("Accept"),
                    "custom_attributes": attrs,
                }
                return web.json_response(seen, headers=extra)
            if kind == "upper":
                return web.Response(
                    body=body.upper(),
                    headers={"Content-Type": "text/x-upper; charset=utf-8; step=1"},
                )
            if kind == "ctparams":
                return web.Response(
                    body=b"a,b\n",
                    headers={"Content-Type": "text/csv; charset=utf-8; header=present"},
                )
            if kind == "fail415":
                return web.Response(status=415, text=f"unsupported content type: {ctype}")
            if kind == "fail500":
                return web.Response(status=500, text="boom")
            if kind == "slow":
                await asyncio.sleep(2)
                return web.Response(text="late")
            if kind == "inflate":
                return web.Response(body=b"x" * (LIMIT + 1), content_type="text/plain")
            raise AssertionError(kind)

        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_get("/ping", ping)
        app.router.add_post("/invocations", invocations)
        return app

    async def _serve(self, app: web.Application) -> str:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        self._runners.append(runner)
        return f"http://127.0.0.1:{runner.addresses[0][1]}"

    async def _start(self, kinds: list[str]) -> None:
        for kind in kinds:
            self.urls[kind] = await self._serve(self._app(kind))

    def serve(self, app: web.Application) -> str:
        """Serve any app on a free loopback port of this thread's loop; returns its URL."""
        return asyncio.run_coroutine_threadsafe(self._serve(app), self._loop).result(10)

    async def _stop(self) -> None:
        for runner in self._runners:
            await runner.cleanup()

    def start(self, kinds: list[str]) -> Containers:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(kinds), self._loop).result(10)
        return self

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


def _closed_port_url() -> str:
    return f"http://127.0.0.1:{free_port()}"


@pytest.fixture(scope="module")
def containers() -> Iterator[Containers]:
    kinds = ["echo", "record", "upper", "ctparams", "fail415", "fail500", "slow", "inflate"]
    c = Containers().start(kinds)
    yield c
    c.stop()


def _up(c: Containers, kind: str, host: str | None = None, **kw: Any) -> Upstream:
    return Upstream(hostname=host or kind, url=c.urls[kind], log_path=f"/tmp/logs/{kind}.log", **kw)


def _direct(c: Containers, name: str = "direct-ep") -> GatewayConfig:
    return GatewayConfig(
        endpoint_name=name,
        mode="Direct",
        containers=(
            _up(c, "echo"),
            _up(c, "record"),
            _up(c, "ctparams"),
            _up(c, "fail415"),
            _up(c, "fail500"),
            _up(c, "slow", invocation_timeout=1.0),
            Upstream(hostname="dead", url=_closed_port_url(), log_path="/tmp/logs/dead.log"),
        ),
        region="eu-west-1",
        account_id="123456789012",
    )


@pytest.fixture(scope="module")
def direct(containers: Containers) -> Iterator[ThreadedGateway]:
    with ThreadedGateway(_direct(containers)) as gw:
        yield gw


@pytest.fixture(scope="module")
def serial(containers: Containers) -> Iterator[ThreadedGateway]:
    config = GatewayConfig(
        endpoint_name="serial-ep",
        mode="Serial",
        containers=(_up(containers, "upper", "step-1"), _up(containers, "record", "step-2")),
    )
    with ThreadedGateway(config) as gw:
        yield gw


def _runtime(url: str) -> Any:
    return runtime_client_for(url)


def _error(client: Any, exc_name: str, **params: Any) -> dict[str, Any]:
    exc = getattr(client.exceptions, exc_name)
    with pytest.raises(exc) as info:
        client.invoke_endpoint(**params)
    response: dict[str, Any] = info.value.response
    return response


# --- Direct --------------------------------------------------------------------------------------


def test_direct_routes_by_hostname_and_sets_response_headers(direct: ThreadedGateway) -> None:
    rt = _runtime(direct.url)
    r = rt.invoke_endpoint(
        EndpointName="direct-ep",
        TargetContainerHostname="echo",
        ContentType="application/json",
        Body=b'{"x": 1}',
    )
    assert r["Body"].read() == b'{"x": 1}'
    assert r["ContentType"] == "application/json"
    assert r["InvokedProductionVariant"] == "AllTraffic"
    headers = r["ResponseMetadata"]["HTTPHeaders"]
    assert len(headers["x-amzn-requestid"]) == 36
    assert "CustomAttributes" not in r

    other = rt.invoke_endpoint(
        EndpointName="direct-ep", TargetContainerHostname="record", Body=b"hi", Accept="text/csv"
    )
    seen = json.loads(other["Body"].read())
    assert seen["body"] == "hi"
    assert seen["accept"] == "text/csv"
    assert other["ResponseMetadata"]["RequestId"] != r["ResponseMetadata"]["RequestId"]


def test_content_type_with_parameters_is_returned_verbatim(direct: ThreadedGateway) -> None:
    r = _runtime(direct.url).invoke_endpoint(
        EndpointName="direct-ep", TargetContainerHostname="ctparams", Body=b"q"
    )
    assert r["ContentType"] == "text/csv; charset=utf-8; header=present"
    assert r["Body"].read() == b"a,b\n"


def test_custom_attributes_round_trip(direct: ThreadedGateway) -> None:
    r = _runtime(direct.url).invoke_endpoint(
        EndpointName="direct-ep",
        TargetContainerHostname="record",
        Body=b"{}",
        CustomAttributes="trace=abc,tenant=7",
        InferenceId="inference-1",
    )
    assert json.loads(r["Body"].read())["custom_attributes"] == "trace=abc,tenant=7"
    assert r["CustomAttributes"] == "seen=trace=abc,tenant=7"


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"TargetContainerHostname": "nope"}, "TargetContainerHostname nope does not exist"),
        ({}, "configured for direct invocation: specify TargetContainerHostname"),
        (
            {"TargetContainerHostname": "echo", "TargetVariant": "Blue"},
            "Variant Blue does not exist",
        ),
    ],
)
def test_direct_validation_errors(
    direct: ThreadedGateway, params: dict[str, str], fragment: str
) -> None:
    rt = _runtime(direct.url)
    r = _error(rt, "ValidationError", EndpointName="direct-ep", Body=b"{}", **params)
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert r["Error"]["Code"] == "ValidationError"
    assert fragment in r["Error"]["Message"]
    if "TargetVariant" not in params:
        assert "echo, record" in r["Error"]["Message"]  # says what is allowed


def test_hostname_sent_to_serial_endpoint_is_refused(serial: ThreadedGateway) -> None:
    r = _error(
        _runtime(serial.url),
        "ValidationError",
        EndpointName="serial-ep",
        TargetContainerHostname="step-1",
        Body=b"x",
    )
    assert "not configured for direct invocation" in r["Error"]["Message"]
    assert "'step-1'" in r["Error"]["Message"]


def test_unknown_endpoint(direct: ThreadedGateway) -> None:
    r = _error(_runtime(direct.url), "ValidationError", EndpointName="other", Body=b"x")
    assert r["Error"]["Message"] == "Endpoint other of account 123456789012 not found."


@pytest.mark.parametrize(
    ("host", "status", "kind"), [("fail415", 415, "client"), ("fail500", 500, "server")]
)
def test_container_error_is_model_error(
    direct: ThreadedGateway, host: str, status: int, kind: str
) -> None:
    r = _error(
        _runtime(direct.url),
        "ModelError",
        EndpointName="direct-ep",
        TargetContainerHostname=host,
        ContentType="text/csv",
        Body=b"1,2",
    )
    body = "unsupported content type: text/csv" if status == 415 else "boom"
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 424
    assert r["OriginalStatusCode"] == status
    assert r["OriginalMessage"] == body
    assert r["LogStreamArn"] == (
        "arn:aws:logs:eu-west-1:123456789012:log-group:/aws/sagemaker/Endpoints/direct-ep"
        f":log-stream:AllTraffic/local-1/{host}"
    )
    assert r["Error"]["Message"] == (
        f'Received {kind} error ({status}) from {host} with message "{body}". '
        f"See /tmp/logs/{host}.log for more information."
    )


def test_timeout_is_model_error_with_status_0(direct: ThreadedGateway) -> None:
    r = _error(
        _runtime(direct.url),
        "ModelError",
        EndpointName="direct-ep",
        TargetContainerHostname="slow",
        Body=b"x",
    )
    assert r["OriginalStatusCode"] == 0
    assert r["Error"]["Message"].startswith(
        'Received server error (0) from slow with message "Your invocation timed out while '
        "waiting for a response from container slow. Review the latency metrics for each "
        'container in Amazon CloudWatch, resolve the issue, and try again."'
    )


def test_unreachable_container_is_model_error_with_status_0(direct: ThreadedGateway) -> None:
    r = _error(
        _runtime(direct.url),
        "ModelError",
        EndpointName="direct-ep",
        TargetContainerHostname="dead",
        Body=b"x",
    )
    assert r["OriginalStatusCode"] == 0
    assert "could not get a response from container dead" in r["OriginalMessage"]
    assert "connecting to http://127.0.0.1:" in r["OriginalMessage"]


class _Health:
    def __init__(self, down: set[str]) -> None:
        self.down = down

    def is_up(self, hostname: str) -> bool:
        return hostname not in self.down


def test_container_known_down_is_answered_without_connecting(containers: Containers) -> None:
    with ThreadedGateway(_direct(containers, "health-ep"), health=_Health({"echo"})) as gw:
        before = containers.hits["echo"]
        r = _error(
            _runtime(gw.url),
            "ModelError",
            EndpointName="health-ep",
            TargetContainerHostname="echo",
            Body=b"x",
        )
        assert containers.hits["echo"] == before
        assert r["OriginalStatusCode"] == 0
        assert "it is down or restarting" in r["OriginalMessage"]


# --- Serial --------------------------------------------------------------------------------------


def test_serial_chains_body_and_content_type_verbatim(serial: ThreadedGateway) -> None:
    r = _runtime(serial.url).invoke_endpoint(
        EndpointName="serial-ep",
        ContentType="text/plain",
        Accept="application/json",
        CustomAttributes="k=v",
        Body=b"hello",
    )
    assert r["ContentType"] == "application/json; charset=utf-8"
    seen = json.loads(r["Body"].read())
    assert seen == {
        "body": "HELLO",
        "content_type": "text/x-upper; charset=utf-8; step=1",
        "accept": "application/json",
        "custom_attributes": "k=v",
    }
    assert r["CustomAttributes"] == "seen=k=v"


def test_serial_intermediate_gets_no_accept(containers: Containers) -> None:
    config = GatewayConfig(
        endpoint_name="serial-accept",
        mode="Serial",
        containers=(_up(containers, "record", "first"), _up(containers, "echo", "second")),
    )
    with ThreadedGateway(config) as gw:
        r = _runtime(gw.url).invoke_endpoint(
            EndpointName="serial-accept", ContentType="text/plain", Accept="text/csv", Body=b"z"
        )
    seen = json.loads(r["Body"].read())
    assert seen["accept"] is None
    assert seen["content_type"] == "text/plain"


def test_serial_failure_names_the_failing_container(containers: Containers) -> None:
    config = GatewayConfig(
        endpoint_name="serial-fail",
        mode="Serial",
        containers=(_up(containers, "upper", "prep"), _up(containers, "fail500", "model")),
    )
    with ThreadedGateway(config) as gw:
        r = _error(_runtime(gw.url), "ModelError", EndpointName="serial-fail", Body=b"x")
    assert r["OriginalStatusCode"] == 500
    assert r["Error"]["Message"].startswith(
        'Received server error (500) from model with message "boom"'
    )
    assert r["LogStreamArn"].endswith("/local-1/model")


def test_serial_intermediate_oversize_names_both_containers(containers: Containers) -> None:
    config = GatewayConfig(
        endpoint_name="serial-big",
        mode="Serial",
        containers=(_up(containers, "inflate", "producer"), _up(containers, "record", "consumer")),
    )
    before = containers.hits["record"]
    with ThreadedGateway(config) as gw:
        r = _error(_runtime(gw.url), "ModelError", EndpointName="serial-big", Body=b"x")
    assert containers.hits["record"] == before
    assert r["OriginalStatusCode"] == 0
    assert r["OriginalMessage"] == (
        f"Container producer returned {LIMIT + 1} bytes, more than the {LIMIT}-byte limit of "
        "a request to container consumer."
    )
    assert r["LogStreamArn"].endswith("/local-1/producer")


# --- payload limit -------------------------------------------------------------------------------


def test_oversize_body_is_validation_error(direct: ThreadedGateway, containers: Containers) -> None:
    before = containers.hits["echo"]
    r = _error(
        _runtime(direct.url),
        "ValidationError",
        EndpointName="direct-ep",
        TargetContainerHostname="echo",
        Body=b"x" * (LIMIT + 1),
    )
    rid = r["ResponseMetadata"]["RequestId"]
    assert r["Error"]["Message"] == (
        f"Request {rid} has oversize body. Got {LIMIT + 1} bytes; "
        f"the limit is {LIMIT} bytes (6 MiB)."
    )
    assert containers.hits["echo"] == before
    ok = _runtime(direct.url).invoke_endpoint(
        EndpointName="direct-ep", TargetContainerHostname="echo", Body=b"y" * LIMIT
    )
    assert len(ok["Body"].read()) == LIMIT


def test_oversize_chunked_body_is_refused_while_streaming(direct: ThreadedGateway) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(8):
            yield b"z" * (1024 * 1024)

    async def post() -> tuple[int, dict[str, Any], str]:
        async with (
            aiohttp.ClientSession() as s,
            s.post(
                f"{direct.url}/endpoints/direct-ep/invocations",
                data=chunks(),
                headers={"X-Amzn-SageMaker-Target-Container-Hostname": "echo"},
            ) as resp,
        ):
            return resp.status, json.loads(await resp.read()), resp.headers["x-amzn-ErrorType"]

    status, body, code = asyncio.run(post())
    assert (status, code) == (400, "ValidationError")
    assert f"Got more than {LIMIT} bytes" in body["Message"]


# --- several endpoints on one gateway ------------------------------------------------------------


def _serial(c: Containers, name: str, *kinds: str) -> GatewayConfig:
    ups = tuple(_up(c, kind, f"step-{i}") for i, kind in enumerate(kinds, 1))
    return GatewayConfig(endpoint_name=name, mode="Serial", containers=ups)


def _series(url: str) -> set[tuple[str, str]]:
    """(endpoint, container) of every Invocations series /metrics shows."""

    async def get() -> str:
        async with aiohttp.ClientSession() as s, s.get(f"{url}/metrics") as resp:
            return await resp.text()

    return {
        (sample.labels["endpoint"], sample.labels["container"])
        for family in text_string_to_metric_families(asyncio.run(get()))
        if family.name == "Invocations"
        for sample in family.samples
        if sample.name == "Invocations_total"
    }


def test_one_gateway_serves_endpoints_by_name(containers: Containers) -> None:
    with ThreadedGateway(_serial(containers, "reg-a", "echo")) as gw:
        endpoints = gw.gateway.endpoints
        gw.on_loop(lambda: endpoints.put(_serial(containers, "reg-b", "upper", "echo")))
        rt = _runtime(gw.url)
        for name, answer in (("reg-a", b"hello"), ("reg-b", b"HELLO")):
            r = rt.invoke_endpoint(EndpointName=name, Body=b"hello", ContentType="text/plain")
            assert r["Body"].read() == answer
        assert {("reg-a", "step-1"), ("reg-b", "step-1"), ("reg-b", "step-2")} <= _series(gw.url)

        # replaced: the next request is the new endpoint's; series it no longer has are gone
        gw.on_loop(lambda: endpoints.put(_serial(containers, "reg-b", "echo")))
        r = rt.invoke_endpoint(EndpointName="reg-b", Body=b"hello", ContentType="text/plain")
        assert r["Body"].read() == b"hello"
        assert ("reg-b", "step-2") not in _series(gw.url)

        # removed: an unknown endpoint, as if it had never been served
        gw.on_loop(lambda: endpoints.remove("reg-b"))
        r = _error(rt, "ValidationError", EndpointName="reg-b", Body=b"x")
        assert r["Error"]["Message"] == "Endpoint reg-b of account 000000000000 not found."
        assert {e for e, _ in _series(gw.url)} == {"reg-a"}
        assert endpoints.names == ["reg-a"]

        # the HTTP servers are the gateway's: an endpoint cannot bring its own limits
        other = dataclasses.replace(_serial(containers, "reg-c", "echo"), max_payload_bytes=10)
        with pytest.raises(ValueError, match="max_payload_bytes is 10, but this gateway's is"):
            gw.on_loop(lambda: endpoints.put(other))


def test_a_request_in_flight_keeps_the_endpoint_it_found(containers: Containers) -> None:
    """Replacing an endpoint is atomic for requests: each is answered whole by one of the two."""
    with ThreadedGateway(_serial(containers, "swap", "slow")) as gw:
        rt = _runtime(gw.url)
        answers: list[bytes] = []
        before = threading.Thread(
            target=lambda: answers.append(
                rt.invoke_endpoint(EndpointName="swap", Body=b"x")["Body"].read()
            )
        )
        slow_calls = containers.hits["slow"]
        before.start()
        while containers.hits["slow"] == slow_calls:  # at the slow container (2 s) now
            time.sleep(0.01)
        gw.on_loop(lambda: gw.gateway.endpoints.put(_serial(containers, "swap", "upper")))
        r = _runtime(gw.url).invoke_endpoint(EndpointName="swap", Body=b"after")
        assert r["Body"].read() == b"AFTER"
        before.join(10)
        assert answers == [b"late"]


# --- metrics, ping, EndpointClient --------------------------------------------------------------


def _samples(url: str) -> dict[tuple[str, str], float]:
    async def get() -> str:
        async with aiohttp.ClientSession() as s, s.get(f"{url}/metrics") as resp:
            assert resp.status == 200
            return await resp.text()

    out: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(asyncio.run(get())):
        for s in family.samples:
            if s.labels.get("endpoint") == "metrics-ep":
                out[(s.name, s.labels["container"])] = s.value
    return out


def test_metrics_after_calls(containers: Containers) -> None:
    with ThreadedGateway(_direct(containers, "metrics-ep")) as gw:
        rt = _runtime(gw.url)
        for _ in range(3):
            rt.invoke_endpoint(EndpointName="metrics-ep", TargetContainerHostname="echo", Body=b"1")
        for host in ("fail415", "fail500"):
            _error(
                rt, "ModelError", EndpointName="metrics-ep", TargetContainerHostname=host, Body=b""
            )
        _error(rt, "ValidationError", EndpointName="metrics-ep", Body=b"")
        m = _samples(gw.url)
    assert m[("Invocations_total", "echo")] == 3
    assert m[("ContainerLatency_count", "echo")] == 3
    assert m[("ContainerLatency_sum", "echo")] > 0
    assert m[("OverheadLatency_count", "echo")] == 3
    assert m[("Invocation4XXErrors_total", "echo")] == 0
    assert m[("Invocation4XXErrors_total", "fail415")] == 1
    assert m[("Invocation5XXErrors_total", "fail500")] == 1
    assert m[("Invocation4XXErrors_total", "")] == 1  # the gateway's own ValidationError
    assert m[("Invocations_total", "record")] == 0


def test_gateway_ping_and_unknown_path(direct: ThreadedGateway) -> None:
    async def get() -> tuple[int, int, str]:
        async with aiohttp.ClientSession() as s:
            async with s.get(f"{direct.url}/ping") as ping:
                ping_status = ping.status
            async with s.get(f"{direct.url}/nope") as nope:
                return ping_status, nope.status, nope.headers["x-amzn-ErrorType"]

    assert asyncio.run(get()) == (200, 404, "UnknownOperationException")


def test_async_invocations_place_is_a_validation_error(direct: ThreadedGateway) -> None:
    rt = _runtime(direct.url)
    with pytest.raises(rt.exceptions.ValidationError) as info:
        rt.invoke_endpoint_async(EndpointName="direct-ep", InputLocation="s3://bucket/in.json")
    assert "does not support asynchronous invocations" in info.value.response["Error"]["Message"]


def test_endpoint_client_against_gateway(direct: ThreadedGateway) -> None:
    client = EndpointClient("direct-ep", client=_runtime(direct.url))
    result = client.invoke({"a": 1}, target="echo", custom_attributes="c=1")
    assert result == InvokeResult(
        body=b'{"a": 1}',
        content_type="application/json",
        custom_attributes="seen=c=1",
        invoked_variant="AllTraffic",
    )
    assert result.json() == {"a": 1}
    assert client.invoke("plain", target="record", content_type="text/plain").json()["body"] == (
        "plain"
    )

    with pytest.raises(ClientModelError) as model_error:
        client.invoke(b"x", target="fail415")
    e = model_error.value
    assert (e.code, e.status_code, e.original_status_code) == ("ModelError", 424, 415)
    assert e.original_message == "unsupported content type: application/json"
    assert e.log_stream_arn is not None and e.log_stream_arn.endswith("/local-1/fail415")

    with pytest.raises(ClientValidationError) as validation:
        client.invoke(b"x", target="nope")
    assert validation.value.status_code == 400
    assert "TargetContainerHostname nope does not exist" in validation.value.message


def test_endpoint_client_reads_endpoint_url_from_environment(
    direct: ThreadedGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", direct.url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    result = EndpointClient("direct-ep").invoke("hi", target="echo", content_type="text/plain")
    assert (result.text(), result.content_type) == ("hi", "text/plain")


# --- every error shape, parsed by botocore ------------------------------------------------------


class _BrokenHealth:
    def is_up(self, hostname: str) -> bool:
        raise RuntimeError("supervisor exploded")


def test_unexpected_failure_is_internal_failure_without_traceback(containers: Containers) -> None:
    with ThreadedGateway(_direct(containers, "broken-ep"), health=_BrokenHealth()) as gw:
        rt = _runtime(gw.url)
        r = _error(
            rt,
            "InternalFailure",
            EndpointName="broken-ep",
            TargetContainerHostname="echo",
            Body=b"x",
        )
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 500
    message = r["Error"]["Message"]
    assert message.startswith("The local gateway failed while handling request ")
    assert "Traceback" not in message and "exploded" not in message


@pytest.mark.parametrize(
    "error",
    [
        gw_errors.ValidationError("bad"),
        gw_errors.InternalFailure("oops"),
        gw_errors.ModelError(
            GatewayConfig("e", "Serial", (Upstream("c1", "http://127.0.0.1:1"),)), "c1", 502, "x"
        ),
    ],
    ids=lambda e: type(e).__name__,
)
def test_botocore_parses_each_error_shape(error: gw_errors.GatewayError) -> None:
    """Each class's response becomes botocore's exception of that name, with modeled members."""

    async def handler(_: web.Request) -> web.Response:
        return aiohttp_response(error.to_reply("req-1"))

    app = web.Application()
    app.router.add_post("/endpoints/{name}/invocations", handler)
    server = Containers().start([])
    url = server.serve(app)
    try:
        r = _error(_runtime(url), error.code, EndpointName="e", Body=b"x")
    finally:
        server.stop()
    assert r["Error"]["Code"] == error.code
    assert r["Error"]["Message"] == error.message
    assert r["ResponseMetadata"]["HTTPStatusCode"] == error.status
    assert r["ResponseMetadata"]["RequestId"] == "req-1"
    for key, value in error.members().items():
        assert r[key] == value


# --- config and docs ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"mode": "Parallel"}, "mode must be 'Direct' or 'Serial', got 'Parallel'"),
        ({"containers": ()}, "1 to 15 containers, got 0"),
        ({"endpoint_name": "bad_name"}, "endpoint_name 'bad_name' is not a valid"),
        ({"max_payload_bytes": 0}, "max_payload_bytes must be > 0"),
        (
            {"containers": (Upstream("a", "http://x"), Upstream("a", "http://y"))},
            "unique; repeated: a",
        ),
    ],
)
def test_config_errors_say_what_is_allowed(kwargs: dict[str, Any], fragment: str) -> None:
    base: dict[str, Any] = {
        "endpoint_name": "ep",
        "mode": "Direct",
        "containers": (Upstream("a", "http://127.0.0.1:1"),),
    }
    with pytest.raises(ValueError, match=re.escape(fragment)):
        GatewayConfig(**{**base, **kwargs})


def test_upstream_errors_say_what_is_allowed() -> None:
    with pytest.raises(ValueError, match="letters, digits and inner hyphens"):
        Upstream("-bad", "http://127.0.0.1:1")
    with pytest.raises(ValueError, match=r"must be http\(s\)://"):
        Upstream("ok", "127.0.0.1:1")
    with pytest.raises(ValueError, match="invocation_timeout must be > 0, got 0"):
        Upstream("ok", "http://127.0.0.1:1", invocation_timeout=0)


def test_docs_list_exactly_the_exposed_metrics(containers: Containers) -> None:
    doc = (Path(__file__).parents[2] / "docs" / "gateway.md").read_text()
    section = doc.split("## Metrics", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"^\| `(\w+)`", section, flags=re.MULTILINE))
    metrics = GatewayMetrics()
    metrics.endpoint(_direct(containers, "doc-ep"))
    # prometheus_client names counter families without the `_total` it puts on the wire
    exposed = {
        f.name + ("_total" if f.type == "counter" else "") for f in metrics.registry.collect()
    }
    assert documented == exposed
