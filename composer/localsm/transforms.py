"""Transform jobs: CreateTransformJob runs the local batch transform (composer/batch/).

The job's model runs as a pipeline of its own (pipelines.py), behind a gateway of its own, over
every input object; the job's Environment goes to each of its containers, as SageMaker sets it.
`S3Uri` and `S3OutputPath` also take `file://` URIs and absolute paths here, as ModelDataUrl does.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from ..batch import TransformOptions, transform_local
from ..batch.progress import Counter
from ..errors import ComposerError
from ..runners.contract import Runner
from .errors import ApiError, already_exists, not_found
from .lifecycle import failure_reason
from .pipelines import ModelPlan, pipeline_for

_Document = dict[str, Any]


@dataclass
class _Job:
    name: str
    arn: str
    created: float
    document: _Document
    status: str = "InProgress"
    failure_reason: str | None = None
    started: float | None = None
    ended: float | None = None
    modified: float = 0.0
    task: asyncio.Task[None] | None = None


def _location(uri: str, member: str) -> str:
    if uri.startswith("s3://"):
        return uri
    if uri.startswith("file://"):
        return unquote(urlparse(uri).path)
    if uri.startswith("/"):
        return uri
    raise ApiError(
        f"{member}: got {uri!r}; the local SageMaker reads and writes s3:// URIs "
        "(AWS_ENDPOINT_URL_S3 picks the S3), file:// URIs and absolute paths"
    )


def _options(document: _Document) -> TransformOptions:
    """CreateTransformJob's members as the local batch transform's options."""
    given = document["TransformInput"]
    output = document["TransformOutput"]
    client = document.get("ModelClientConfig") or {}
    split = given.get("SplitType", "None")
    if split not in ("None", "Line"):
        raise ApiError(
            f"TransformInput.SplitType: got {split}; the local batch transform splits by None "
            "or Line"
        )
    extra: _Document = {}
    for option, member in (
        ("invocations_timeout", "InvocationsTimeoutInSeconds"),
        ("invocations_max_retries", "InvocationsMaxRetries"),
    ):
        if client.get(member) is not None:
            extra[option] = client[member]
    try:
        return TransformOptions(
            content_type=given.get("ContentType"),
            accept=output.get("Accept"),
            split_type=split,
            strategy=document.get("BatchStrategy"),
            max_payload_mb=document.get("MaxPayloadInMB"),
            max_concurrent=document.get("MaxConcurrentTransforms"),
            assemble_with=output.get("AssembleWith", "None"),
            compression=given.get("CompressionType", "None"),
            **extra,
        )
    except ComposerError as exc:
        raise ApiError(str(exc)) from None


class TransformJobs:
    """The four transform-job operations, over the models of the control plane that owns them."""

    def __init__(
        self,
        *,
        root: Path,
        model_plan: Callable[[str], ModelPlan],
        arn: Callable[[str, str], str],
        runner_for: Callable[[ModelPlan], Runner],
        spawn: Callable[[Awaitable[None]], asyncio.Task[None]],
        out: Callable[[str], None],
    ) -> None:
        self.root = root
        self._model_plan = model_plan
        self._arn = arn
        self._runner_for = runner_for
        self._spawn = spawn
        self._out = out
        self._jobs: dict[str, _Job] = {}

    async def create(self, document: _Document) -> _Document:
        name = document["TransformJobName"]
        arn = self._arn("transform-job", name)
        if name in self._jobs:
            raise already_exists("transform job", arn)
        plan = self._model_plan(document["ModelName"])
        environment = document.get("Environment") or {}
        if environment:
            containers = tuple(
                {**c, "environment": {**c.get("environment", {}), **environment}}
                for c in plan.containers
            )
            plan = replace(plan, containers=containers)
        pipeline = pipeline_for(plan, name, {}, self.root / f"transform-{name}")
        try:
            pipeline.check_batch_transform()
        except ComposerError as exc:
            raise ApiError(str(exc)) from None
        options = _options(document)
        source = document["TransformInput"]["DataSource"].get("S3DataSource") or {}
        if "S3Uri" not in source:
            raise ApiError("TransformInput.DataSource.S3DataSource: give an S3Uri")
        given = _location(source["S3Uri"], "TransformInput.DataSource.S3DataSource.S3Uri")
        written = _location(document["TransformOutput"]["S3OutputPath"], "S3OutputPath")
        now = time.time()
        job = _Job(name, arn, now, {k: v for k, v in document.items() if k != "Tags"}, modified=now)
        self._jobs[name] = job

        async def run() -> None:
            job.started = time.time()
            try:
                runner = self._runner_for(plan)
                result = await transform_local(
                    pipeline, options, given, written, runner=runner, progress=Counter()
                )
            except asyncio.CancelledError:
                job.status = "Stopped"
            except Exception as exc:  # a ComposerError says what failed; anything else is ours
                job.status, job.failure_reason = "Failed", failure_reason(exc)
            else:
                failed = result.failed
                if failed:
                    first = failed[0]
                    why = "; ".join(first.failures[:3]) or "no output"
                    job.status = "Failed"
                    job.failure_reason = failure_reason(
                        RuntimeError(
                            f"{len(failed)} of {len(result.objects)} input objects failed; "
                            f"{first.name}: {why}"
                        )
                    )
                else:
                    job.status = "Completed"
            job.ended = job.modified = time.time()
            self._out(f"sm-compose: transform job {name} {job.status}")

        job.task = self._spawn(run())
        return {"TransformJobArn": arn}

    def _job(self, name: str) -> _Job:
        found = self._jobs.get(name)
        if found is None:
            raise not_found("transform job", name)
        return found

    async def describe(self, document: _Document) -> _Document:
        job = self._job(document["TransformJobName"])
        out = {
            **job.document,
            "TransformJobArn": job.arn,
            "TransformJobStatus": job.status,
            "CreationTime": job.created,
        }
        for member, value in (
            ("FailureReason", job.failure_reason),
            ("TransformStartTime", job.started),
            ("TransformEndTime", job.ended),
        ):
            if value is not None:
                out[member] = value
        return out

    def summaries(self, status: str | None) -> list[_Job]:
        return [j for j in self._jobs.values() if status is None or j.status == status]

    @staticmethod
    def summary(job: _Job) -> _Document:
        out: _Document = {
            "TransformJobName": job.name,
            "TransformJobArn": job.arn,
            "CreationTime": job.created,
            "LastModifiedTime": job.modified,
            "TransformJobStatus": job.status,
        }
        if job.ended is not None:
            out["TransformEndTime"] = job.ended
        if job.failure_reason:
            out["FailureReason"] = job.failure_reason
        return out

    async def stop(self, document: _Document) -> _Document:
        job = self._job(document["TransformJobName"])
        if job.status == "InProgress" and job.task is not None:
            job.status = "Stopping"
            job.modified = time.time()
            job.task.cancel()
        return {}

    async def aclose(self) -> None:
        for job in self._jobs.values():
            if job.task is not None and not job.task.done():
                job.task.cancel()
