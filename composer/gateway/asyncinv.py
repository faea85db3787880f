"""InvokeEndpointAsync: queue the request, answer 202 at once, write the result to S3 later.

As SageMaker does: the request body is read from X-Amzn-SageMaker-InputLocation; the answer is
written to `S3OutputPath/<InferenceId>.out` (or the given Filename), an error to
`S3FailurePath/<InferenceId>-error.out`; at most MaxConcurrentInvocationsPerInstance requests
run at once, the rest wait in order; a request that waited longer than its RequestTTLSeconds
expires; InvocationTimeoutSeconds bounds each run. Locations may also be local paths, so the
gateway works without S3; both are read and written by `composer.storage` (`s3://` through
boto3's standard chain, AWS_ENDPOINT_URL_S3 included).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from .. import storage
from .config import AsyncSettings
from .errors import GatewayError, ValidationError
from .reply import H_REQUEST_ID, Reply, json_reply

log = logging.getLogger("composer.gateway.async")

H_INPUT = "X-Amzn-SageMaker-InputLocation"
H_CONTENT_TYPE = "X-Amzn-SageMaker-Content-Type"
H_ACCEPT = "X-Amzn-SageMaker-Accept"
H_CUSTOM = "X-Amzn-SageMaker-Custom-Attributes"
H_INFERENCE_ID = "X-Amzn-SageMaker-Inference-Id"
H_TTL = "X-Amzn-SageMaker-RequestTTLSeconds"
H_TIMEOUT = "X-Amzn-SageMaker-InvocationTimeoutSeconds"
H_EXTENSION = "X-Amzn-SageMaker-S3OutputPathExtension"
H_FILENAME = "X-Amzn-SageMaker-Filename"
H_OUTPUT = "X-Amzn-SageMaker-OutputLocation"
H_FAILURE = "X-Amzn-SageMaker-FailureLocation"

DEFAULT_TTL = 21600  # 6 hours, SageMaker's default and maximum
DEFAULT_TIMEOUT = 900  # 15 minutes, SageMaker's default
MAX_INPUT_BYTES = 1024 * 1024 * 1024  # 1 GB, SageMaker's async payload limit
_S3 = re.compile(r"^s3://([^/]+)/(.+)$")
_EXTENSION = re.compile(r"^(?!s3:|https:)[a-zA-Z0-9!_.*'()/-]{1,512}$")
_FILENAME = re.compile(r"^(?!.*\..*\.)[a-zA-Z0-9][a-zA-Z0-9-_.]{0,31}$")
_INFERENCE_ID = re.compile(r"^\S[\x20-\x7e]{0,63}$")

#: Runs one request through the endpoint: (body, content type, accept, custom attributes,
#: timeout) -> (answer, answer content type); raises GatewayError (ModelError) on failure.
Invoke = Callable[
    [bytes, str | None, str | None, str | None, float], Awaitable[tuple[bytes, str | None]]
]


class AsyncFailure(Exception):
    """A queued request failed; the message goes to the failure location."""


def read_location(location: str, limit: int = MAX_INPUT_BYTES) -> bytes:
    """Blocking read of an s3:// object or a local file (run it in an executor)."""
    try:
        return storage.read(location, limit=limit)
    except storage.TooLarge as exc:
        raise AsyncFailure(
            f"the input {exc.location} has {exc.size} bytes; the limit is {exc.limit}"
        ) from None
    except storage.StorageError as exc:
        raise AsyncFailure(f"cannot read the input {exc.location}: {exc.reason}") from None


def write_location(location: str, data: bytes, content_type: str | None) -> None:
    """Blocking write of a whole object (an s3:// key or a local file)."""
    try:
        storage.write(location, data, content_type)
    except storage.StorageError as exc:
        raise AsyncFailure(f"cannot write {exc.location}: {exc.reason}") from None


def _join(base: str, *parts: str) -> str:
    return "/".join([base.rstrip("/"), *(p.strip("/") for p in parts if p)])


def _int_header(h: Mapping[str, str], name: str, low: int, high: int, default: int) -> int:
    raw = h.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValidationError(
            f"{name}: got {raw!r}; expected an integer from {low} to {high}."
        ) from None
    if not low <= value <= high:
        raise ValidationError(f"{name}: got {value}; it must be from {low} to {high}.")
    return value


@dataclass(frozen=True)
class _Queued:
    inference_id: str
    input_location: str
    output_location: str
    failure_location: str
    content_type: str | None
    accept: str | None
    custom_attributes: str | None
    ttl: int
    timeout: int
    received: float


class AsyncInvoker:
    """The queue of one endpoint's asynchronous requests."""

    def __init__(self, settings: AsyncSettings, invoke: Invoke) -> None:
        self.settings = settings
        self.invoke = invoke
        self.slots = asyncio.Semaphore(settings.max_concurrent_invocations)
        self.tasks: set[asyncio.Task[None]] = set()

    async def accept(self, h: Mapping[str, str], request_id: str) -> Reply:
        """Check the request (headers `h`), queue it, answer 202 saying where its result goes."""
        location = h.get(H_INPUT)
        if not location:
            raise ValidationError(f"{H_INPUT} is required: the s3:// URI of the request body.")
        if location.startswith("https://"):
            raise ValidationError(
                f"{H_INPUT}: got {location!r}; the local gateway reads s3:// URIs and local "
                "paths, not https:// URLs."
            )
        if not (_S3.match(location) or location.startswith(("/", "file://"))):
            raise ValidationError(
                f"{H_INPUT}: got {location!r}; give s3://BUCKET/KEY (or, locally, an absolute "
                "path)."
            )
        ttl = _int_header(h, H_TTL, 60, 21600, DEFAULT_TTL)
        timeout = _int_header(h, H_TIMEOUT, 1, 3600, DEFAULT_TIMEOUT)
        inference_id = h.get(H_INFERENCE_ID) or str(uuid.uuid4())
        if not _INFERENCE_ID.match(inference_id):
            raise ValidationError(
                f"{H_INFERENCE_ID}: got {inference_id!r}; 1 to 64 printable characters, not "
                "starting with a space."
            )
        extension = h.get(H_EXTENSION, "")
        if extension and not _EXTENSION.match(extension):
            raise ValidationError(
                f"{H_EXTENSION}: got {extension!r}; letters, digits and !_.*'()/- only."
            )
        filename = h.get(H_FILENAME)
        if filename is not None and not _FILENAME.match(filename):
            raise ValidationError(
                f"{H_FILENAME}: got {filename!r}; at most 32 letters, digits, - _ and one '.'."
            )
        s = self.settings
        output = _join(s.output_path, extension, filename or f"{inference_id}.out")
        failure = _join(s.failure_path or s.output_path, extension, f"{inference_id}-error.out")
        queued = _Queued(
            inference_id=inference_id,
            input_location=location,
            output_location=output,
            failure_location=failure,
            content_type=h.get(H_CONTENT_TYPE),
            accept=h.get(H_ACCEPT),
            custom_attributes=h.get(H_CUSTOM),
            ttl=ttl,
            timeout=timeout,
            received=time.monotonic(),
        )
        task = asyncio.create_task(self._run(queued), name=f"async-{inference_id}")
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        headers = {H_OUTPUT: output, H_REQUEST_ID: request_id}
        if s.failure_path is not None:
            headers[H_FAILURE] = failure
        document = {"InferenceId": inference_id}
        return json_reply(202, document, headers, content_type="application/json; charset=utf-8")

    async def _run(self, q: _Queued) -> None:
        loop = asyncio.get_running_loop()
        async with self.slots:
            try:
                waited = time.monotonic() - q.received
                if waited > q.ttl:
                    raise AsyncFailure(
                        f"Request {q.inference_id} expired: it waited {waited:.0f} s in the queue, "
                        f"more than its RequestTTLSeconds of {q.ttl}."
                    )
                body = await loop.run_in_executor(None, read_location, q.input_location)
                try:
                    # The container call times out first, naming the container; this is a
                    # backstop for anything else that hangs.
                    async with asyncio.timeout(q.timeout + 5):
                        answer, content_type = await self.invoke(
                            body, q.content_type, q.accept, q.custom_attributes, float(q.timeout)
                        )
                except TimeoutError:
                    raise AsyncFailure(
                        f"Request {q.inference_id} timed out: no answer within its "
                        f"InvocationTimeoutSeconds of {q.timeout}."
                    ) from None
                except GatewayError as exc:
                    raise AsyncFailure(exc.message) from None
                await loop.run_in_executor(
                    None, write_location, q.output_location, answer, content_type
                )
                log.info("async %s: wrote %s", q.inference_id, q.output_location)
            except AsyncFailure as exc:
                await self._write_failure(q, str(exc))
            except Exception as exc:
                log.exception("async %s failed in the gateway", q.inference_id)
                await self._write_failure(q, f"The local gateway failed: {type(exc).__name__}")

    async def _write_failure(self, q: _Queued, message: str) -> None:
        loop = asyncio.get_running_loop()
        log.warning("async %s failed: %s", q.inference_id, message)
        try:
            await loop.run_in_executor(
                None, write_location, q.failure_location, message.encode(), "text/plain"
            )
        except Exception:
            log.exception("async %s: cannot write %s", q.inference_id, q.failure_location)

    async def drain(self, timeout: float | None = None) -> None:
        """Wait for every queued request (tests, clean shutdown)."""
        if self.tasks:
            await asyncio.wait(set(self.tasks), timeout=timeout)

    async def close(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        for task in list(self.tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
