"""A batch transform on this machine, as SageMaker runs one.

Every container starts with SAGEMAKER_BATCH=true (and the job's values, when set); the job's
parameters are settled with each container's /execution-parameters; records are split, packed
into mini-batches and sent through a private gateway (so a Serial pipeline chains exactly as it
does when served), at most MaxConcurrentTransforms at a time. An object's output is written only
when every one of its records succeeded.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import aiohttp

from ..errors import ComposerError, UsageError
from ..gateway import start_gateway
from ..runners.contract import Runner
from ..runners.endpoint import gateway_config, running_endpoint
from ..spec.models import Pipeline
from ..storage import StorageError, join, read, write
from .params import Settled, TransformOptions, parse_execution_parameters, settle
from .progress import Counter, TransformProgress
from .records import MiniBatch, RecordError, assemble, decompress, mini_batches, split_records
from .storage import InputObject, list_inputs

#: Answers may be far larger than requests (spaCy's documents are); the gateway's cap for them.
ANSWER_LIMIT = 512 * 1024 * 1024
PARAMETERS_TIMEOUT = 10.0
_RETRY_CODES = {"InternalFailure", "ServiceUnavailable"}


class TransformFailed(ComposerError):
    """Some objects failed; the result lists each object and record."""


@dataclass
class ObjectResult:
    """One input object: how many records it had and what became of them."""

    name: str
    source: str
    records: int = 0
    requests: int = 0
    output: str | None = None
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures and self.output is not None


@dataclass
class TransformResult:
    settled: Settled | None
    objects: list[ObjectResult]
    seconds: float

    @property
    def failed(self) -> list[ObjectResult]:
        return [o for o in self.objects if not o.ok]

    @property
    def records(self) -> int:
        return sum(o.records for o in self.objects if o.ok)

    @property
    def requests(self) -> int:
        return sum(o.requests for o in self.objects)

    @property
    def records_per_second(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        ok = len(self.objects) - len(self.failed)
        return (
            f"{ok} of {len(self.objects)} objects transformed: {self.records} records in "
            f"{self.requests} requests, {self.seconds:.1f} s ({self.records_per_second:,.1f} "
            "records/s)"
        )


class _Attempt(Exception):
    """One request failed; `retry` says whether SageMaker would try it again."""

    def __init__(self, message: str, retry: bool) -> None:
        super().__init__(message)
        self.retry = retry


async def _execution_parameters(
    session: aiohttp.ClientSession, hostname: str, url: str
) -> dict[str, Any]:
    """GET /execution-parameters; a container that does not answer it has no opinion."""
    try:
        async with session.get(
            f"{url}/execution-parameters",
            timeout=aiohttp.ClientTimeout(total=PARAMETERS_TIMEOUT),
        ) as resp:
            if resp.status != 200:
                return {}
            text = await resp.text()
    except (aiohttp.ClientError, TimeoutError):
        return {}
    try:
        answer = json.loads(text)
    except json.JSONDecodeError:
        raise UsageError(
            f"container {hostname}: GET /execution-parameters answered {text[:80]!r}, "
            "which is not JSON"
        ) from None
    return parse_execution_parameters(hostname, answer)


class _Job:
    """One running transform: the shared request slots, the gateway URL, the options."""

    def __init__(
        self,
        url: str,
        options: TransformOptions,
        settled: Settled,
        output: str,
        progress: TransformProgress,
        session: aiohttp.ClientSession,
    ) -> None:
        self.url = url
        self.options = options
        self.settled = settled
        self.output = output
        self.progress = progress
        self.session = session
        self.slots = asyncio.Semaphore(settled.max_concurrent)
        self.objects = asyncio.Semaphore(settled.max_concurrent + 1)
        self.headers: dict[str, str] = {}
        if options.content_type is not None:
            self.headers["Content-Type"] = options.content_type
        if options.accept is not None:
            self.headers["Accept"] = options.accept

    async def _post(self, body: bytes) -> tuple[bytes, str | None]:
        try:
            async with self.session.post(
                self.url, data=body, headers=self.headers, skip_auto_headers={"Content-Type"}
            ) as resp:
                data = await resp.read()
                if resp.status == 200:
                    return data, resp.headers.get("Content-Type")
                code = resp.headers.get("x-amzn-ErrorType", f"HTTP {resp.status}")
        except aiohttp.ClientError as exc:
            raise _Attempt(f"the local gateway could not be reached ({exc})", True) from None
        try:
            document = json.loads(data)
            message = str(document.get("Message") or document)
            original = document.get("OriginalStatusCode")
        except (json.JSONDecodeError, AttributeError):
            message, original = data.decode("utf-8", "replace")[:500], None
        server_side = code in _RETRY_CODES or (
            code == "ModelError" and (original in (None, 0) or int(original) >= 500)
        )
        raise _Attempt(f"{code}: {message}", server_side)

    async def send(self, batch: MiniBatch) -> tuple[bytes, str | None]:
        """One mini-batch, retried as SageMaker does (InvocationsMaxRetries, server errors)."""
        tries = self.options.invocations_max_retries + 1
        for attempt in range(1, tries + 1):
            try:
                return await self._post(batch.body)
            except _Attempt as exc:
                if not exc.retry or attempt == tries:
                    suffix = f" (after {attempt} attempts)" if attempt > 1 else ""
                    raise _Attempt(f"{exc}{suffix}", False) from None
                await asyncio.sleep(min(0.1 * 2**attempt, 2.0))
        raise AssertionError("unreachable")

    async def run_object(self, obj: InputObject) -> ObjectResult:
        result = ObjectResult(obj.name, obj.location)
        async with self.objects:
            loop = asyncio.get_running_loop()
            o = self.options
            try:
                raw = await loop.run_in_executor(None, read, obj.location)
                data = decompress(raw, o.compression, obj.name)
                records = split_records(data, o.split_type)
            except (StorageError, RecordError) as exc:
                result.failures.append(str(exc))
                return result
            result.records = len(records)
            self.progress.add_total(len(records))
            try:
                batches = list(
                    mini_batches(
                        records,
                        split_type=o.split_type,
                        strategy=self.settled.strategy,
                        limit=self.settled.payload_limit,
                        name=obj.name,
                    )
                )
            except RecordError as exc:
                result.failures.append(str(exc))
                self.progress.advance(len(records), failed=True)
                return result
            del records, data, raw
            answers: list[tuple[bytes, str | None] | None] = [None] * len(batches)
            stopped = 0

            async def one(batch: MiniBatch) -> None:
                nonlocal stopped
                async with self.slots:
                    if result.failures:  # the object has failed: send nothing more of it
                        stopped += batch.count
                        self.progress.advance(batch.count, failed=True)
                        return
                    try:
                        answers[batch.index] = await self.send(batch)
                        result.requests += 1
                        self.progress.advance(batch.count)
                    except _Attempt as exc:
                        result.requests += 1
                        result.failures.append(f"{obj.name}: {batch.records}: {exc}")
                        self.progress.advance(batch.count, failed=True)

            await asyncio.gather(*(one(b) for b in batches))
            if result.failures:
                if stopped:
                    result.failures.append(
                        f"{obj.name}: {stopped} later records not sent once the object failed"
                    )
                return result
            bodies = [a[0] for a in answers if a is not None]
            content_type = next((a[1] for a in answers if a is not None), None)
            target = join(self.output, obj.name + ".out")
            out = assemble(bodies, o.assemble_with)
            try:
                await loop.run_in_executor(None, write, target, out, content_type)
            except StorageError as exc:
                result.failures.append(str(exc))
                return result
            result.output = target
            return result


async def transform_local(
    pipeline: Pipeline,
    options: TransformOptions,
    input_location: str,
    output_location: str,
    *,
    runner: Runner | None = None,
    progress: TransformProgress | None = None,
    on_settled: Callable[[Settled], None] | None = None,
) -> TransformResult:
    """Run the whole job; the result says what happened to every object (nothing is raised
    for failed records: the caller decides the exit status)."""
    pipeline.check_batch_transform()
    progress = progress or Counter()
    loop = asyncio.get_running_loop()
    objects = await loop.run_in_executor(None, list_inputs, input_location)
    progress.note(f"{len(objects)} input object(s) from {input_location}")
    async with contextlib.AsyncExitStack() as stack:
        # Container logs stay in their log files: the terminal shows the progress instead.
        devnull = stack.enter_context(open(os.devnull, "w"))  # noqa: SIM115
        endpoint = await stack.enter_async_context(
            running_endpoint(
                pipeline,
                port=0,
                runner=runner,
                out=progress.note,
                progress=progress.note,
                extra_env=options.container_env(),
                log_stream=devnull,
            )
        )
        session = await stack.enter_async_context(
            aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0),
                timeout=aiohttp.ClientTimeout(total=None),
            )
        )
        answers = {
            m.hostname: await _execution_parameters(session, m.hostname, m.url)
            for m in endpoint.containers
        }
        settled = settle(options, answers)
        if on_settled is not None:
            on_settled(settled)
        progress.note(settled.describe())
        base = gateway_config(pipeline, endpoint.containers)
        config = replace(
            base,
            max_payload_bytes=max(settled.payload_limit or 0, ANSWER_LIMIT),
            containers=tuple(
                replace(u, invocation_timeout=float(options.invocations_timeout))
                for u in base.containers
            ),
        )
        gateway = await start_gateway(config, "127.0.0.1", 0, health=endpoint)
        stack.push_async_callback(gateway.stop)
        url = f"{gateway.url}/endpoints/{pipeline.name}/invocations"
        job = _Job(url, options, settled, output_location, progress, session)
        started = time.monotonic()
        results = await asyncio.gather(*(job.run_object(o) for o in objects))
        seconds = time.monotonic() - started
    return TransformResult(settled, list(results), seconds)
