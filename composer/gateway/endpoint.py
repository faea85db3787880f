"""InvokeEndpoint for one endpoint: routing (Direct, Serial), container calls, errors, metrics.

Whichever HTTP server received the request (fastpath.py or app.py), it hands the request id,
the headers and the body (or how to read it) to `Endpoint.invoke` and writes the `Reply` it
gets; every failure is answered here, in SageMaker's shapes (errors.py).

Hot path: pooled keep-alive connections to each container (upstream.py), pre-bound metric
children, no per-request lookups beyond a dict, nothing streamed that need not be.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from ..sagemaker_facts import check_target_model
from . import errors
from .asyncinv import AsyncInvoker
from .config import GatewayConfig, Health, Upstream
from .connections import last_resort
from .errors import GatewayError, ModelError, ValidationError
from .metrics import ENDPOINT_LEVEL, EndpointMetrics
from .multimodel import H_TARGET_MODEL, LoadFailed, ModelSourceError, MultiModelRouter
from .reply import H_REQUEST_ID, Reply
from .sessions import H_SESSION, BadSessionAnswer, SessionTable
from .trace import REQUEST_ID, Trace
from .upstream import UpstreamError, UpstreamPool

# Request headers boto3 sends (botocore's sagemaker-runtime model, InvokeEndpointInput).
H_CUSTOM = "X-Amzn-SageMaker-Custom-Attributes"
H_TARGET_HOST = "X-Amzn-SageMaker-Target-Container-Hostname"
H_TARGET_VARIANT = "X-Amzn-SageMaker-Target-Variant"
H_INFERENCE_ID = "X-Amzn-SageMaker-Inference-Id"
# Response headers botocore reads (InvokeEndpointOutput).
H_VARIANT = "x-Amzn-Invoked-Production-Variant"
_H_CUSTOM_LOWER = H_CUSTOM.lower()

#: Reads a request's body when the server has not read it yet (aiohttp); raises GatewayError.
BodyReader = Callable[[], Awaitable[bytes]]


@dataclass(frozen=True)
class _Answer:
    body: bytes
    content_type: str | None
    custom_attributes: str | None
    latency_ns: int
    #: NewSessionId / ClosedSessionId for the caller (None: the request had no SessionId).
    session_headers: dict[str, str] | None = None


class Endpoint:
    """One served endpoint: its config, health view, metrics, connections to its containers."""

    def __init__(
        self, config: GatewayConfig, health: Health | None, metrics: EndpointMetrics
    ) -> None:
        self.config = config
        self.health = health
        self.metrics = metrics
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
        self.sessions = SessionTable(config.endpoint_name)
        #: InvokeEndpoint requests being answered: the least loaded of a variant's instances
        #: gets the next request (variants.py).
        self.in_flight = 0
        #: The gateway's per-hop trace (trace.py); None: not recorded.
        self.trace: Trace | None = None
        self.async_invoker: AsyncInvoker | None = None
        if config.async_inference is not None:
            self.async_invoker = AsyncInvoker(config.async_inference, self._run_async)

    @property
    def queued(self) -> bool:
        """Asynchronous requests are still queued or running."""
        return self.async_invoker is not None and bool(self.async_invoker.tasks)

    def retire(self) -> None:
        """No longer served (replaced or removed): what it holds ends as its requests end."""
        for upstream in self.upstreams.values():
            upstream.close()

    async def close(self) -> None:
        """The gateway stops: queued asynchronous requests are cancelled, connections closed."""
        if self.async_invoker is not None:
            await self.async_invoker.close()
        self.retire()

    def route(self, h: Mapping[str, str]) -> Upstream | None:
        """The container a Direct request targets (None: Serial, every container in turn).

        Refuses an unknown variant, and a hostname that is missing, unknown or not allowed,
        with SageMaker's ValidationError.
        """
        config = self.config
        name = config.endpoint_name
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
        return up

    async def invoke(
        self, request_id: str, h: Mapping[str, str], body: bytes | BodyReader
    ) -> Reply:
        """InvokeEndpoint (`h`: case-insensitive headers; `body`: read whole, or its reader)."""
        started = time.perf_counter_ns()
        in_containers = 0
        overhead_label: str | None = None
        if self.trace is not None:
            REQUEST_ID.set(request_id)
        self.in_flight += 1
        try:
            config = self.config
            name = config.endpoint_name
            up = self.route(h)
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
            session = h.get(H_SESSION)
            if session is not None:
                self.sessions.check(session, may_open=True)
            data = body if isinstance(body, bytes) else await body()
            content_type = h.get("Content-Type")
            accept = h.get("Accept")
            attrs = h.get(H_CUSTOM)
            if up is not None:
                overhead_label = up.hostname
                answer = await self.call(
                    up, data, content_type, accept, attrs, "a response", target_model, session
                )
            else:
                overhead_label = ENDPOINT_LEVEL
                answer = await self.chain(data, content_type, accept, attrs, target_model, session)
            in_containers = answer.latency_ns
            headers = {H_VARIANT: config.variant_name, H_REQUEST_ID: request_id}
            if answer.content_type is not None:
                headers["Content-Type"] = answer.content_type
            if answer.custom_attributes is not None:
                headers[H_CUSTOM] = answer.custom_attributes
            if answer.session_headers is not None:
                headers.update(answer.session_headers)
            return Reply(200, headers, answer.body)
        except Exception as e:
            return self.failure(request_id, e)
        finally:
            self.in_flight -= 1
            if overhead_label is not None:
                overhead = time.perf_counter_ns() - started - in_containers
                self.metrics.of(overhead_label).overhead_latency.observe(overhead / 1000)

    def failure(self, request_id: str, e: Exception) -> Reply:
        """The answer to a failed invocation (called where it was caught), counted.

        A ModelError is counted per container where it happened; the gateway's own refusals
        and failures at endpoint level; anything unexpected is the last-resort InternalFailure.
        """
        if isinstance(e, ModelError):
            return e.to_reply(request_id)
        m = self.metrics.of(ENDPOINT_LEVEL)
        if isinstance(e, GatewayError):
            (m.errors_5xx if e.status >= 500 else m.errors_4xx).inc()
            return e.to_reply(request_id)
        m.errors_5xx.inc()
        return last_resort(request_id, e)

    async def call(
        self,
        up: Upstream,
        body: bytes,
        content_type: str | None,
        accept: str | None,
        custom_attributes: str | None,
        receiver: str,
        target_model: str | None = None,
        session: str | None = None,
    ) -> _Answer:
        """One container round trip; any failure becomes the ModelError SageMaker would send.

        `session`: the caller's SessionId, forwarded; the container's session headers then
        update the endpoint's sessions and come back in `session_headers`.
        """
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
        if session is not None:
            headers[H_SESSION] = session
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
            self._no_answer(up, body, headers, start)
            raise ModelError.timed_out(self.config, host) from None
        except UpstreamError as e:
            m.errors_5xx.inc()
            self._no_answer(up, body, headers, start)
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
        if self.trace is not None:
            self.trace.record(
                self.config.endpoint_name, host, content_type, accept, body,
                status, answer_type, data, size if data is None else len(data), latency,
            )  # fmt: skip
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
        opened: dict[str, str] | None = None
        if session is not None:
            try:
                opened = self.sessions.answered(session, resp.headers, host)
            except BadSessionAnswer as e:
                m.errors_5xx.inc()
                raise ModelError(self.config, host, 0, str(e)) from None
        return _Answer(data, answer_type, answer_attrs, latency, opened)

    def _no_answer(self, up: Upstream, body: bytes, headers: dict[str, str], start: int) -> None:
        """A hop that got no answer (timeout, broken connection), traced."""
        if self.trace is not None:
            latency = time.perf_counter_ns() - start
            ctype, accept = headers.get("Content-Type"), headers.get("Accept")
            name, host = self.config.endpoint_name, up.hostname
            self.trace.record(name, host, ctype, accept, body, None, None, None, None, latency)

    async def chain(
        self,
        body: bytes,
        content_type: str | None,
        accept: str | None,
        attrs: str | None,
        target_model: str | None,
        session: str | None = None,
        containers: tuple[Upstream, ...] | None = None,
    ) -> _Answer:
        """Serial: each answer (body and Content-Type, verbatim) is the next request.

        `session` goes to every container; whichever opens or closes it, the caller hears.
        `containers`: a prefix of the pipeline (streaming runs the rest), the last of which
        then gets no Accept either.
        """
        every = self.config.containers
        chained = every if containers is None else containers
        last = len(every) - 1
        spent = 0
        answer: _Answer | None = None
        said: dict[str, str] | None = None
        for i, up in enumerate(chained):
            receiver = (
                f"a request to container {every[i + 1].hostname}" if i < last else "a response"
            )
            answer = await self.call(
                up,
                body,
                content_type,
                accept if i == last else None,
                attrs,
                receiver,
                target_model,
                session,
            )
            spent += answer.latency_ns
            body, content_type = answer.body, answer.content_type
            if answer.session_headers is not None:
                said = {**(said or {}), **answer.session_headers}
        assert answer is not None
        return _Answer(answer.body, answer.content_type, answer.custom_attributes, spent, said)

    async def invoke_async(self, request_id: str, h: Mapping[str, str]) -> Reply:
        """InvokeEndpointAsync (see asyncinv.py).

        An endpoint without an AsyncInferenceConfig refuses it, as SageMaker does; SageMaker
        supports async only for single-container endpoints.
        """
        if self.async_invoker is None:
            why = (
                f"it has {len(self.config.containers)} containers ({self.config.mode}), and "
                "SageMaker supports asynchronous inference for single-container endpoints only"
                if len(self.config.containers) > 1
                else "it was not created with an AsyncInferenceConfig (add an async: block)"
            )
            return ValidationError(
                f"Endpoint {self.config.endpoint_name} does not support asynchronous "
                f"invocations: {why}."
            ).to_reply(request_id)
        if self.trace is not None:
            REQUEST_ID.set(request_id)  # the queued request's task copies it
        try:
            return await self.async_invoker.accept(h, request_id)
        except GatewayError as e:
            return e.to_reply(request_id)

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
