"""InvokeEndpointWithResponseStream: the container's chunks sent on as event-stream PayloadParts.

As SageMaker has it: the container answers the same `POST /invocations`, with HTTP/1.1 chunked
transfer encoding; each chunk becomes one PayloadPart as it arrives (never cut again, never
held back); a plain answer is one PayloadPart. Until the container's status line is in, every
failure is the error InvokeEndpoint gives (ModelError, ValidationError, ...); after that the
caller has a 200 and an event stream, so a broken or timed-out container ends it with a
ModelStreamError event (`StreamBroken`, `ModelInvocationTimeExceeded`).

Direct streams the target container. Serial runs every container but the last as
InvokeEndpoint does (buffered: the next one needs the whole body), then streams the last.
Multi-model containers cannot stream: the operation has no TargetModel member.

`invoke_stream` answers with a `Reply` (an error) or an `Opened` stream; the HTTP server
(app.py) writes either. The plain InvokeEndpoint path never comes here.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass

from . import errors, eventstream
from .config import Upstream
from .endpoint import H_CUSTOM, H_VARIANT, BodyReader, Endpoint
from .errors import ModelError, ValidationError
from .reply import H_REQUEST_ID, Reply
from .sessions import H_SESSION
from .trace import REQUEST_ID
from .upstream import Streamed, UpstreamError

log = logging.getLogger("composer.gateway")

#: InvokeEndpointWithResponseStream's Accept and ContentType travel in these headers.
H_STREAM_ACCEPT = "X-Amzn-SageMaker-Accept"
H_STREAM_CONTENT_TYPE = "X-Amzn-SageMaker-Content-Type"
_H_CUSTOM_LOWER = H_CUSTOM.lower()


@dataclass
class Opened:
    """The container is streaming: the answer's headers, then its event-stream messages."""

    headers: dict[str, str]
    frames: AsyncGenerator[bytes, None]


async def invoke_stream(
    endpoint: Endpoint, request_id: str, h: Mapping[str, str], body: BodyReader
) -> Reply | Opened:
    """InvokeEndpointWithResponseStream on `endpoint` (`h`: case-insensitive headers)."""
    if endpoint.trace is not None:
        REQUEST_ID.set(request_id)
    try:
        config = endpoint.config
        up = endpoint.route(h)
        called = config.containers if up is None else (up,)
        multi = [c.hostname for c in called if c.hostname in endpoint.routers]
        if multi:
            raise ValidationError(
                f"Endpoint {config.endpoint_name} cannot stream through multi-model container "
                f"{multi[0]}: InvokeEndpointWithResponseStream has no TargetModel to name a "
                "model with. Use InvokeEndpoint with TargetModel."
            )
        errors.check_headers(h, errors.STREAM_HEADER_RULES)
        session = h.get(H_SESSION)
        if session is not None:
            endpoint.sessions.check(session, may_open=False)
        data = await body()
        content_type = h.get("Content-Type")
        attrs = h.get(H_CUSTOM)
        last = called[-1]
        if len(called) > 1:
            before = await endpoint.chain(
                data, content_type, None, attrs, None, session, called[:-1]
            )
            data, content_type = before.body, before.content_type
        return await _open(
            endpoint, request_id, last, data, content_type, h.get(H_STREAM_ACCEPT), attrs, session
        )
    except Exception as e:
        return endpoint.failure(request_id, e)


async def _open(
    endpoint: Endpoint,
    request_id: str,
    up: Upstream,
    body: bytes,
    content_type: str | None,
    accept: str | None,
    attrs: str | None,
    session: str | None,
) -> Reply | Opened:
    """Call the streaming container; answer its error, or open the stream."""
    config = endpoint.config
    host = up.hostname
    m = endpoint.metrics.of(host)
    if endpoint.health is not None and not endpoint.health.is_up(host):
        m.invocations.inc()
        m.errors_5xx.inc()
        raise ModelError.unreachable(config, host, "it is down or restarting")
    headers: dict[str, str] = {}
    for name, value in (
        ("Content-Type", content_type),
        ("Accept", accept),
        (H_CUSTOM, attrs),
        (H_SESSION, session),
    ):
        if value is not None:
            headers[name] = value
    m.invocations.inc()
    started = time.perf_counter_ns()
    deadline = asyncio.get_running_loop().time() + up.invocation_timeout
    limit = config.max_payload_bytes
    streamed: Streamed | None = None
    try:
        async with asyncio.timeout_at(deadline):
            streamed = await endpoint.upstreams[host].stream(body, headers, limit)
            if not 200 <= streamed.status < 300:
                text = (await streamed.read(limit)).decode("utf-8", "replace")
                (m.errors_4xx if 400 <= streamed.status < 500 else m.errors_5xx).inc()
                raise ModelError(config, host, streamed.status, text)
    except BaseException as e:
        if endpoint.trace is not None and isinstance(e, TimeoutError | UpstreamError | ModelError):
            got = streamed.status if streamed is not None else None
            spent = time.perf_counter_ns() - started
            endpoint.trace.record(
                config.endpoint_name, host, content_type, accept, body, got, None, None, None, spent
            )
        if streamed is not None:
            streamed.close()
        if isinstance(e, TimeoutError):
            m.errors_5xx.inc()
            raise ModelError.timed_out(config, host) from None
        if isinstance(e, UpstreamError):
            m.errors_5xx.inc()
            why = str(e) if e.connecting else f"the connection to {up.url} broke: {e}"
            raise ModelError.unreachable(config, host, why) from None
        raise
    answer = {
        "Content-Type": eventstream.CONTENT_TYPE,
        H_VARIANT: config.variant_name,
        H_REQUEST_ID: request_id,
    }
    produced = streamed.headers.get("content-type")
    if endpoint.trace is not None:  # the stream's size is unknown when it opens
        spent = time.perf_counter_ns() - started
        endpoint.trace.record(
            config.endpoint_name, host, content_type, accept, body,
            streamed.status, produced, None, None, spent,
        )  # fmt: skip
    if produced is not None:
        answer[H_STREAM_CONTENT_TYPE] = produced
    custom = streamed.headers.get(_H_CUSTOM_LOWER)
    if custom is not None:
        answer[H_CUSTOM] = custom
    if session is not None:
        # the operation has no ClosedSessionId to tell the caller, but a session the container
        # closed is closed (NEW_SESSION never gets here, so nothing opens)
        endpoint.sessions.answered(session, streamed.headers, host)
    return Opened(answer, _frames(endpoint, up, streamed, deadline, started, request_id))


async def _frames(
    endpoint: Endpoint,
    up: Upstream,
    streamed: Streamed,
    deadline: float,
    started: int,
    request_id: str,
) -> AsyncGenerator[bytes, None]:
    """Each part as a PayloadPart as it arrives; a failure as the one event that ends it."""
    host = up.hostname
    m = endpoint.metrics.of(host)
    where = up.log_path or f"the log of container {host}"
    try:
        while True:
            async with asyncio.timeout_at(deadline):
                part = await streamed.next_part()
            if part is None:
                break
            yield eventstream.payload_part(part)
        m.container_latency.observe((time.perf_counter_ns() - started) / 1000)
    except TimeoutError:
        m.errors_5xx.inc()
        yield eventstream.model_stream_error(
            f"Your invocation timed out while waiting for container {host} to finish its "
            f"response stream (its invocation timeout is {up.invocation_timeout:g} s for the "
            f"whole stream). See {where} for more information.",
            eventstream.TIMED_OUT,
        )
    except UpstreamError as e:
        m.errors_5xx.inc()
        yield eventstream.model_stream_error(
            f"The response stream from container {host} broke off: {e}. "
            f"See {where} for more information.",
            eventstream.STREAM_BROKEN,
        )
    except Exception:
        m.errors_5xx.inc()
        log.error("gateway failure streaming request %s", request_id, exc_info=True)
        yield eventstream.internal_stream_failure(
            f"The local gateway failed while streaming request {request_id}; its log has "
            "the details."
        )
    finally:
        streamed.close()
