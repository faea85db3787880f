"""The aiohttp path: every request the fast path hands over, and the app `create_app` returns.

Routes: InvokeEndpoint, InvokeEndpointWithResponseStream, InvokeEndpointAsync, /ping, /metrics,
the control plane's `POST /` when one is given (control.py); any other path or method answers in
SageMaker's JSON shape (UnknownOperationException). The invocation routes ask the core
(registry.py, endpoint.py, streaming.py) for a `Reply` and write it as a `web.Response`, or write
the event stream streaming.py opens, message by message; a body is read here, within the payload
limit and the client timeout.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware
from multidict import CIMultiDictProxy

from . import api, errors
from .config import GatewayConfig, Health
from .connections import Connections, last_resort, new_request_id
from .control import ControlPlane, control_route
from .endpoint import BodyReader
from .metrics import CONTENT_TYPE, GatewayMetrics
from .registry import EndpointRegistry
from .reply import H_REQUEST_ID, Reply, json_reply
from .streaming import Opened

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def aiohttp_response(reply: Reply) -> web.Response:
    """A `Reply` as aiohttp writes it."""
    response = web.Response(status=reply.status, body=reply.body, headers=reply.headers)
    if reply.close:
        response.force_close()
    return response


async def write_stream(request: web.Request, opened: Opened) -> web.StreamResponse:
    """An event stream, chunked: each message written (and sent) as the container's part comes.

    A caller that goes away ends the stream, and with it the container's connection.
    """
    response = web.StreamResponse(status=200, headers=opened.headers)
    frames = opened.frames
    try:
        await response.prepare(request)
        async for frame in frames:
            await response.write(frame)
        await response.write_eof()
    except (ConnectionError, asyncio.CancelledError):
        response.force_close()
        raise
    finally:
        await frames.aclose()
    return response


async def _read_body(request: web.Request, request_id: str, limit: int, timeout: float) -> bytes:
    """Refuse an oversize body before reading it (Content-Length) or as soon as it passes.

    A body still arriving after the client timeout is cut off (slowloris); one already whole
    (the common case) is read without arming a timer.
    """
    declared = request.content_length
    if declared is not None and declared > limit:
        raise errors.oversize_request(request_id, limit, declared)
    try:
        if request.content.is_eof():
            return await request.read()  # counts as it reads; the app's client_max_size = limit
        async with asyncio.timeout(timeout):
            return await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise errors.oversize_request(request_id, limit, None) from None
    except TimeoutError:
        got = request.content.total_bytes
        raise errors.slow_request(request_id, timeout, got, declared) from None


def _sagemaker_shaped(connections: Connections) -> Middleware:
    """Unknown paths and any escaped exception still answer in SageMaker's JSON shape.

    Also the aiohttp side of the connection policy: its requests in flight are counted (a stop
    waits for them), and while the gateway stops every answer closes its connection.
    """

    @web.middleware
    async def middleware(request: web.Request, handler: _Handler) -> web.StreamResponse:
        connections.slow_in_flight += 1
        try:
            response = await handler(request)
        except web.HTTPException as e:
            if e.status < 400:
                raise
            code = "UnknownOperationException" if e.status in (404, 405) else "ValidationError"
            response = aiohttp_response(
                json_reply(
                    e.status,
                    {"Message": f"{request.method} {request.path}: {e.reason}"},
                    {"x-amzn-ErrorType": code, H_REQUEST_ID: new_request_id()},
                    content_type="application/json; charset=utf-8",
                )
            )
        except Exception:
            response = aiohttp_response(last_resort(new_request_id()))
        finally:
            connections.slow_in_flight -= 1
        if connections.closing:
            response.force_close()
        return response

    return middleware


def build_app(
    endpoints: EndpointRegistry, connections: Connections, control: ControlPlane | None = None
) -> web.Application:
    """The aiohttp app serving `endpoints`; they are closed when it is cleaned up.

    With `control`, `POST /` is the control plane's route (control.py).
    """
    limit = endpoints.max_payload_bytes
    timeout = connections.timeout
    app = web.Application(client_max_size=limit, middlewares=[_sagemaker_shaped(connections)])

    def invocation(request: web.Request) -> tuple[str, str, CIMultiDictProxy[str], BodyReader]:
        """(request id, endpoint name, headers, body reader) of an invocation."""
        request_id = new_request_id()
        return (
            request_id,
            request.match_info["name"],
            request.headers,
            lambda: _read_body(request, request_id, limit, timeout),
        )

    async def invoke(request: web.Request) -> web.StreamResponse:
        return aiohttp_response(await endpoints.invoke(*invocation(request)))

    async def invoke_stream(request: web.Request) -> web.StreamResponse:
        answer = await endpoints.invoke_stream(*invocation(request))
        if isinstance(answer, Reply):
            return aiohttp_response(answer)
        return await write_stream(request, answer)

    async def invoke_async(request: web.Request) -> web.StreamResponse:
        reply = await endpoints.invoke_async(
            new_request_id(), request.match_info["name"], request.headers
        )
        return aiohttp_response(reply)

    async def ping(_: web.Request) -> web.StreamResponse:
        return web.Response(status=200)

    async def metrics(_: web.Request) -> web.StreamResponse:
        body = endpoints.metrics.render()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})

    async def endpoints_ctx(_: web.Application) -> AsyncIterator[None]:
        yield
        await endpoints.close()

    app.cleanup_ctx.append(endpoints_ctx)
    app.router.add_post("/endpoints/{name}/invocations", invoke)
    app.router.add_post("/endpoints/{name}/invocations-response-stream", invoke_stream)
    app.router.add_post("/endpoints/{name}/async-invocations", invoke_async)
    app.router.add_get("/ping", ping)
    app.router.add_get("/metrics", metrics)
    api.add_routes(app, endpoints)
    if control is not None:
        app.router.add_post("/", control_route(control))
    return app


def create_app(config: GatewayConfig, health: Health | None = None) -> web.Application:
    """The gateway for one endpoint as a plain aiohttp app (no fast path in front)."""
    endpoints = EndpointRegistry(GatewayMetrics(), config)
    endpoints.put(config, health)
    return build_app(endpoints, Connections(config.client_timeout))
