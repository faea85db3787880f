"""The local gateway: SageMaker Runtime's InvokeEndpoint in front of the endpoint's containers.

Hot path: pooled keep-alive connections to each container (upstream.py), pre-bound metric
children, no per-request lookups beyond a dict, nothing streamed that need not be.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass

from aiohttp import web

from . import errors
from .asyncinv import AsyncInvoker
from .config import GatewayConfig, Health, Upstream
from .errors import GatewayError, InternalFailure, ModelError, ValidationError
from .fastpath import Connections, FastPath
from .metrics import CONTENT_TYPE, ENDPOINT_LEVEL, GatewayMetrics
from .multimodel import (
    H_TARGET_MODEL,
    LoadFailed,
    ModelSourceError,
    MultiModelRouter,
    check_target_model,
)
from .upstream import UpstreamError, UpstreamPool

log = logging.getLogger("composer.gateway")

# Request headers boto3 sends (botocore's sagemaker-runtime model, InvokeEndpointInput).
H_CUSTOM = "X-Amzn-SageMaker-Custom-Attributes"
H_TARGET_HOST = "X-Amzn-SageMaker-Target-Container-Hostname"
H_TARGET_VARIANT = "X-Amzn-SageMaker-Target-Variant"
H_INFERENCE_ID = "X-Amzn-SageMaker-Inference-Id"
# Response headers botocore reads (InvokeEndpointOutput).
H_VARIANT = "x-Amzn-Invoked-Production-Variant"
H_REQUEST_ID = "x-amzn-RequestId"
_H_CUSTOM_LOWER = H_CUSTOM.lower()


@dataclass(frozen=True)
class _Answer:
    body: bytes
    content_type: str | None
    custom_attributes: str | None
    latency_ns: int


class _Endpoint:
    """State of one served endpoint: config, health view, metrics, upstream session."""

    def __init__(self, config: GatewayConfig, health: Health | None) -> None:
        self.config = config
        self.health = health
        self.metrics = GatewayMetrics(config)
        self.by_host = {c.hostname: c for c in config.containers}
        self.upstreams = {
            c.hostname: UpstreamPool(c.url.rstrip("/") + "/invocations") for c in config.containers
        }
        self.hostnames = ", ".join(c.hostname for c in config.containers)
        self.routers = {
            c.hostname: MultiModelRouter(
                self.upstreams[c.hostname], c.model_source, c.invocation_timeout
            )
            for c in config.containers
            if c.model_source is not None
        }
        self.async_invoker: AsyncInvoker | None = None
        if config.async_inference is not None:
            self.async_invoker = AsyncInvoker(config.async_inference, self._run_async)

    async def _run_async(
        self,
        body: bytes,
        content_type: str | None,
        accept: str | None,
        attrs: str | None,
        timeout: float,
    ) -> tuple[bytes, str | None]:
        """One queued asynchronous request through the single container, with its timeout."""
        up = dataclasses.replace(self.config.containers[0], invocation_timeout=timeout)
        answer = await self.call(up, body, content_type, accept, attrs, "a response")
        return answer.body, answer.content_type

    async def call(
        self,
        up: Upstream,
        body: bytes,
        content_type: str | None,
        accept: str | None,
        custom_attributes: str | None,
        receiver: str,
        target_model: str | None = None,
    ) -> _Answer:
        """One container round trip; any failure becomes the ModelError SageMaker would send."""
        host = up.hostname
        m = self.metrics.of(host)
        if self.health is not None and not self.health.is_up(host):
            m.invocations.inc()
            m.errors_5xx.inc()
            raise ModelError.unreachable(self.config, host, "it is down or restarting")
        headers: dict[str, str] = {}
        if content_type is not None:
            headers["Content-Type"] = content_type
        if accept is not None:
            headers["Accept"] = accept
        if custom_attributes is not None:
            headers[H_CUSTOM] = custom_attributes
        limit = self.config.max_payload_bytes
        m.invocations.inc()
        start = time.perf_counter_ns()
        try:
            router = self.routers.get(host)
            if router is None:
                async with asyncio.timeout(up.invocation_timeout):
                    resp = await self.upstreams[host].post(body, headers, limit)
            else:
                if target_model is None:
                    raise ValidationError(
                        f"Container {host} is a multi-model container: specify TargetModel."
                    )
                resp = await router.invoke(
                    target_model, body, headers, limit, up.invocation_timeout
                )
        except TimeoutError:
            m.errors_5xx.inc()
            raise ModelError.timed_out(self.config, host) from None
        except UpstreamError as e:
            m.errors_5xx.inc()
            why = str(e) if e.connecting else f"the connection to {up.url} broke: {e}"
            raise ModelError.unreachable(self.config, host, why) from None
        except ModelSourceError as e:
            m.errors_4xx.inc()
            raise ValidationError(str(e)) from None
        except LoadFailed as e:
            (m.errors_4xx if 400 <= e.status < 500 else m.errors_5xx).inc()
            raise ModelError(self.config, host, e.status, str(e)) from None
        data, status, size = resp.body, resp.status, resp.length
        answer_type = resp.headers.get("content-type")
        answer_attrs = resp.headers.get(_H_CUSTOM_LOWER)
        latency = time.perf_counter_ns() - start
        m.container_latency.observe(latency / 1000)
        if not 200 <= status < 300:
            (m.errors_4xx if 400 <= status < 500 else m.errors_5xx).inc()
            text = (
                data.decode("utf-8", "replace")
                if data is not None
                else f"<error body of {size or 'more than ' + str(limit)} bytes not shown>"
            )
            raise ModelError(self.config, host, status, text)
        if data is None:
            m.errors_5xx.inc()
            got = f"{size} bytes" if size is not None else f"more than {limit} bytes"
            raise ModelError(
                self.config,
                host,
                0,
                f"Container {host} returned {got}, more than the {limit}-byte limit of {receiver}.",
            )
        return _Answer(data, answer_type, answer_attrs, latency)

    async def invoke(self, request: web.Request) -> web.StreamResponse:
        """POST /endpoints/{name}/invocations (through aiohttp)."""
        request_id = str(uuid.uuid4())
        return await self.handle_invoke(
            request_id,
            request.match_info["name"],
            request.headers,
            lambda: _read_body(request, request_id, self.config),
        )

    async def handle_fast(
        self, request_id: str, name: str, headers: Mapping[str, str], body: bytes
    ) -> web.Response:
        """An invocation the fast path read whole (its length within the payload limit)."""

        async def whole() -> bytes:
            return body

        return await self.handle_invoke(request_id, name, headers, whole)

    async def handle_invoke(
        self,
        request_id: str,
        name: str,
        h: Mapping[str, str],
        read_body: Callable[[], Awaitable[bytes]],
    ) -> web.Response:
        """InvokeEndpoint, whichever HTTP server received it (`h`: case-insensitive headers)."""
        started = time.perf_counter_ns()
        in_containers = 0
        overhead_label: str | None = None
        try:
            config = self.config
            if name != config.endpoint_name:
                raise errors.unknown_endpoint(config, name)
            variant = h.get(H_TARGET_VARIANT)
            if variant is not None and variant != config.variant_name:
                raise ValidationError(
                    f"Variant {variant} does not exist on endpoint {name}; "
                    f"its only production variant is {config.variant_name}."
                )
            target = h.get(H_TARGET_HOST)
            up: Upstream | None = None
            if config.mode == "Direct":
                if not target:
                    raise ValidationError(
                        f"Endpoint {name} is configured for direct invocation: specify "
                        f"TargetContainerHostname, one of: {self.hostnames}."
                    )
                up = self.by_host.get(target)
                if up is None:
                    raise ValidationError(
                        f"TargetContainerHostname {target} does not exist in endpoint {name}; "
                        f"its containers are: {self.hostnames}."
                    )
            elif target is not None:
                raise ValidationError(
                    f"Endpoint {name} is not configured for direct invocation "
                    f"(its inference execution mode is Serial), so TargetContainerHostname "
                    f"must not be specified; got {target!r}."
                )
            target_model = h.get(H_TARGET_MODEL)
            if target_model is not None:
                if not self.routers:
                    raise ValidationError(
                        f"Endpoint {name} is not a multi-model endpoint and does not support "
                        "target model header."
                    )
                why = check_target_model(target_model)
                if why is not None:
                    raise ValidationError(f"{why}.")
            elif self.routers and (up is None or up.hostname in self.routers):
                raise ValidationError(f"Request {request_id} is missing a target model header.")
            errors.check_headers(h)
            body = await read_body()
            content_type = h.get("Content-Type")
            accept = h.get("Accept")
            attrs = h.get(H_CUSTOM)
            if up is not None:
                overhead_label = up.hostname
                answer = await self.call(
                    up, body, content_type, accept, attrs, "a response", target_model
                )
                in_containers = answer.latency_ns
            else:
                overhead_label = ENDPOINT_LEVEL
                answer = await self._chain(body, content_type, accept, attrs, target_model)
                in_containers = answer.latency_ns
            headers = {H_VARIANT: config.variant_name, H_REQUEST_ID: request_id}
            if answer.content_type is not None:
                headers["Content-Type"] = answer.content_type
            if answer.custom_attributes is not None:
                headers[H_CUSTOM] = answer.custom_attributes
            return web.Response(body=answer.body, headers=headers)
        except ModelError as e:
            return e.to_response(request_id)
        except GatewayError as e:
            self._count_endpoint_level(e)
            return e.to_response(request_id)
        except Exception:
            log.exception("gateway failure on request %s", request_id)
            failure = InternalFailure(
                f"The local gateway failed while handling request {request_id}; "
                "its log has the details."
            )
            self._count_endpoint_level(failure)
            return failure.to_response(request_id)
        finally:
            if overhead_label is not None:
                overhead = time.perf_counter_ns() - started - in_containers
                self.metrics.of(overhead_label).overhead_latency.observe(overhead / 1000)

    async def _chain(
        self,
        body: bytes,
        content_type: str | None,
        accept: str | None,
        attrs: str | None,
        target_model: str | None,
    ) -> _Answer:
        """Serial: each answer (body and Content-Type, verbatim) is the next request."""
        containers = self.config.containers
        last = len(containers) - 1
        spent = 0
        answer: _Answer | None = None
        for i, up in enumerate(containers):
            receiver = (
                f"a request to container {containers[i + 1].hostname}" if i < last else "a response"
            )
            answer = await self.call(
                up, body, content_type, accept if i == last else None, attrs, receiver, target_model
            )
            spent += answer.latency_ns
            body, content_type = answer.body, answer.content_type
        assert answer is not None
        return _Answer(answer.body, answer.content_type, answer.custom_attributes, spent)

    def _count_endpoint_level(self, e: GatewayError) -> None:
        m = self.metrics.of(ENDPOINT_LEVEL)
        (m.errors_5xx if e.fault or e.status >= 500 else m.errors_4xx).inc()

    async def invoke_async(self, request: web.Request) -> web.StreamResponse:
        """POST /endpoints/{name}/async-invocations: InvokeEndpointAsync (see asyncinv.py).

        An endpoint without an AsyncInferenceConfig refuses it, as SageMaker does; SageMaker
        supports async only for single-container endpoints.
        """
        request_id = str(uuid.uuid4())
        name = request.match_info["name"]
        if name != self.config.endpoint_name:
            return errors.unknown_endpoint(self.config, name).to_response(request_id)
        if self.async_invoker is None:
            why = (
                f"it has {len(self.config.containers)} containers ({self.config.mode}), and "
                "SageMaker supports asynchronous inference for single-container endpoints only"
                if len(self.config.containers) > 1
                else "it was not created with an AsyncInferenceConfig (add an async: block)"
            )
            return ValidationError(
                f"Endpoint {name} does not support asynchronous invocations: {why}."
            ).to_response(request_id)
        try:
            return await self.async_invoker.accept(request, request_id)
        except GatewayError as e:
            return e.to_response(request_id)

    async def ping(self, request: web.Request) -> web.StreamResponse:
        return web.Response(status=200)

    async def metrics_text(self, request: web.Request) -> web.StreamResponse:
        return web.Response(body=self.metrics.render(), headers={"Content-Type": CONTENT_TYPE})


async def _read_body(request: web.Request, request_id: str, config: GatewayConfig) -> bytes:
    """Refuse an oversize body before reading it (Content-Length) or as soon as it passes.

    A body still arriving after client_timeout is cut off (slowloris); one already whole
    (the common case) is read without arming a timer.
    """
    limit = config.max_payload_bytes
    declared = request.content_length
    if declared is not None and declared > limit:
        raise errors.oversize_request(request_id, limit, declared)
    try:
        if request.content.is_eof():
            return await request.read()  # counts as it reads; the app's client_max_size = limit
        async with asyncio.timeout(config.client_timeout):
            return await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise errors.oversize_request(request_id, limit, None) from None
    except TimeoutError:
        got = request.content.total_bytes
        raise errors.slow_request(request_id, config.client_timeout, got, declared) from None


_ENDPOINT = web.AppKey("endpoint", _Endpoint)
_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def _sagemaker_shaped(request: web.Request, handler: _Handler) -> web.StreamResponse:
    """Unknown paths and any escaped exception still answer in SageMaker's JSON shape."""
    try:
        return await handler(request)
    except web.HTTPException as e:
        if e.status < 400:
            raise
        code = "UnknownOperationException" if e.status in (404, 405) else "ValidationError"
        return web.json_response(
            {"Message": f"{request.method} {request.path}: {e.reason}"},
            status=e.status,
            headers={"x-amzn-ErrorType": code, H_REQUEST_ID: str(uuid.uuid4())},
        )
    except Exception:
        request_id = str(uuid.uuid4())
        log.exception("gateway failure on request %s", request_id)
        return InternalFailure(
            f"The local gateway failed while handling request {request_id}."
        ).to_response(request_id)


def create_app(config: GatewayConfig, health: Health | None = None) -> web.Application:
    """The gateway as an aiohttp app; its upstream session lives as long as the app runs."""
    endpoint = _Endpoint(config, health)
    app = web.Application(client_max_size=config.max_payload_bytes, middlewares=[_sagemaker_shaped])
    app[_ENDPOINT] = endpoint

    async def upstreams_ctx(_: web.Application) -> AsyncIterator[None]:
        yield
        if endpoint.async_invoker is not None:
            await endpoint.async_invoker.close()
        for upstream in endpoint.upstreams.values():
            upstream.close()

    app.cleanup_ctx.append(upstreams_ctx)
    app.router.add_post("/endpoints/{name}/invocations", endpoint.invoke)
    app.router.add_post("/endpoints/{name}/async-invocations", endpoint.invoke_async)
    app.router.add_get("/ping", endpoint.ping)
    app.router.add_get("/metrics", endpoint.metrics_text)
    return app


class Gateway:
    """A started gateway on host:port in the caller's asyncio loop (port 0 = any free port)."""

    def __init__(
        self,
        config: GatewayConfig,
        host: str = "127.0.0.1",
        port: int = 8080,
        health: Health | None = None,
    ) -> None:
        self.config = config
        self.host = host
        self.port = port
        self.app = create_app(config, health)
        self._runner: web.AppRunner | None = None
        self._listener: asyncio.Server | None = None
        self._connections: Connections | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def start(self) -> None:
        # keepalive_timeout also bounds how long a connection may take to send its headers
        # (aiohttp closes one still without a whole request then): slowloris protection.
        # lingering_time: how long the rest of a refused body is read and dropped before the
        # connection closes (so the caller still reads the answer); never past the client timeout.
        timeout = self.config.client_timeout
        runner = web.AppRunner(
            self.app,
            access_log=None,
            handle_signals=False,
            keepalive_timeout=timeout,
            lingering_time=min(10.0, timeout),
            logger=errors.server_log,  # a malformed request: one line, not a traceback
        )
        await runner.setup()
        server = runner.server
        assert server is not None
        endpoint = self.app[_ENDPOINT]
        connections = Connections(timeout)

        def protocol() -> FastPath:
            return FastPath(
                endpoint.handle_fast,
                server,
                connections,
                self.config.max_payload_bytes,
                timeout,
            )

        loop = asyncio.get_running_loop()
        try:
            listener = await loop.create_server(protocol, self.host, self.port, reuse_address=True)
        except OSError as e:
            await runner.cleanup()
            raise OSError(
                e.errno, f"the gateway cannot listen on {self.host}:{self.port}: {e.strerror}"
            ) from e
        self._runner = runner
        self._listener = listener
        self._connections = connections
        self.port = int(listener.sockets[0].getsockname()[1])

    async def stop(self, grace: float = 30.0) -> None:
        """Stop accepting; answer what is in flight (up to `grace` seconds); close."""
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        if self._connections is not None:
            await self._connections.close(grace)
            self._connections = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def serve_forever(self) -> None:
        """Start (if needed) and serve until cancelled; then stop cleanly."""
        if self._runner is None:
            await self.start()
        try:
            await asyncio.Event().wait()
        finally:
            await self.stop()


async def start_gateway(
    config: GatewayConfig,
    host: str = "127.0.0.1",
    port: int = 8080,
    health: Health | None = None,
) -> Gateway:
    """Start a gateway in the running loop; `await gateway.stop()` ends it."""
    gateway = Gateway(config, host, port, health)
    await gateway.start()
    return gateway


class ThreadedGateway:
    """A gateway on its own loop in a daemon thread, for blocking callers (tests, benchmarks)."""

    def __init__(
        self,
        config: GatewayConfig,
        host: str = "127.0.0.1",
        port: int = 0,
        health: Health | None = None,
    ) -> None:
        self.gateway = Gateway(config, host, port, health)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="composer-gateway", daemon=True
        )

    @property
    def url(self) -> str:
        return self.gateway.url

    def start(self) -> ThreadedGateway:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.gateway.start(), self._loop).result(timeout=30)
        return self

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self.gateway.stop(), self._loop).result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        self._loop.close()

    def __enter__(self) -> ThreadedGateway:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
