"""Endpoints' containers: a set started beside what serves, switched in at once, stopped.

CreateEndpoint, UpdateEndpoint, DeleteEndpoint and `up --watch`'s reloads (watch.py) all come
down to the same steps: start a set of containers (runners/endpoint.py's `started_containers`)
until each passes /ping (`start`, `start_pipeline`), then `switch`: serve it under the
endpoint's name in the gateway's registry (an atomic replace) and stop what it replaced once
its requests in flight are answered. A set that fails to start never reaches the registry, so
what served goes on serving. A reload of one container is a set of one.
"""

from __future__ import annotations

import contextlib
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ComposerError
from ..gateway import EndpointRegistry
from ..runners.contract import Runner
from ..runners.endpoint import LocalEndpoint, gateway_config, started_containers
from ..runners.process import ProcessRunner
from ..spec.models import Pipeline
from .pipelines import ModelPlan, pipeline_for

#: SageMaker's FailureReason holds at most 1024 characters (botocore's FailureReason shape).
MAX_FAILURE_REASON = 1024
#: Instances of one variant that run here at most (each a full copy of its containers).
MAX_LOCAL_INSTANCES = 4


def instance_count(variant: dict[str, Any]) -> int:
    return int(variant.get("InitialInstanceCount") or 1)


@dataclass
class RunningVariant:
    """One production variant's started containers (a copy per instance), and what
    DescribeEndpoint says of it."""

    variant: dict[str, Any]
    images: list[str]
    instances: list[LocalEndpoint]

    @property
    def name(self) -> str:
        return str(self.variant["VariantName"])

    @property
    def weight(self) -> float:
        return float(self.variant.get("InitialVariantWeight", 1.0))


@dataclass
class RunningSet:
    """One started set of an endpoint's containers (every variant's), stopped together."""

    config_name: str
    variants: list[RunningVariant]
    stack: contextlib.AsyncExitStack
    started: float = field(default_factory=time.time)

    async def stop(self) -> None:
        await self.stack.aclose()


class Lifecycle:
    """Starts and stops sets for the control plane and switches the gateway's routing."""

    def __init__(
        self,
        root: Path,
        *,
        engine_runner: Runner | None = None,
        engine_flag: str = "--engine podman (or docker)",
        out: Callable[[str], None] = print,
        host: str = "127.0.0.1",
    ) -> None:
        self.root = root
        self.engine_runner = engine_runner
        self.engine_flag = engine_flag
        self.out = out
        self.host = host
        self.registry: EndpointRegistry | None = None  # the gateway's, once it listens
        self._generation = itertools.count(1)

    def runner_for(self, plan: ModelPlan) -> Runner:
        """Local processes when every image is ours; else the engine, if `local` has one."""
        images = plan.engine_images
        if not images:
            return ProcessRunner(self.host)
        if self.engine_runner is None:
            raise ComposerError(
                f"image {images[0]} was not made by `sm-compose build` (or `push`) on this "
                "machine, so it runs only under an OCI engine: start the local SageMaker with "
                f"{self.engine_flag}"
            )
        return self.engine_runner

    async def start(
        self,
        endpoint_name: str,
        config_name: str,
        variants: list[tuple[ModelPlan, dict[str, Any], list[str]]],
        async_config: dict[str, Any] | None,
    ) -> RunningSet:
        """A new set for the endpoint: each variant's (plan, variant, images) started, every
        container pinged; raises ComposerError if not (and stops what had started)."""
        generation = self.folder(endpoint_name)
        stack = contextlib.AsyncExitStack()
        started: list[RunningVariant] = []
        try:
            for plan, variant, images in variants:
                copies = []
                for copy in range(instance_count(variant)):
                    folder = generation
                    if len(variants) > 1:
                        folder = folder / str(variant["VariantName"])
                    if copy:
                        folder = folder / f"instance-{copy + 1}"
                    pipeline = pipeline_for(plan, endpoint_name, variant, folder, async_config)
                    copies.append(
                        await self.start_pipeline(
                            pipeline,
                            stack,
                            runner=self.runner_for(plan),
                            scope=f"{endpoint_name}/",
                        )
                    )
                started.append(RunningVariant(variant, images, copies))
        except BaseException:
            await stack.aclose()
            raise
        return RunningSet(config_name, started, stack)

    def folder(self, endpoint_name: str) -> Path:
        """A fresh folder for one new set's working files, never a running set's."""
        return self.root / f"{endpoint_name}-{next(self._generation)}"

    async def start_pipeline(
        self,
        pipeline: Pipeline,
        stack: contextlib.AsyncExitStack,
        *,
        runner: Runner | None,
        scope: str = "",
        progress: Callable[[str], None] | None = None,
        startup_timeout: float | None = None,
    ) -> LocalEndpoint:
        """Every container of `pipeline` started and pinged, stopped when `stack` closes; raises
        (having stopped what had started) if one does not pass /ping."""
        return await stack.enter_async_context(
            started_containers(
                pipeline,
                host=self.host,
                runner=runner,
                out=self.out,
                progress=progress or (lambda _message: None),
                startup_timeout=startup_timeout,
                scope=scope,
            )
        )

    async def switch(
        self,
        name: str,
        new: RunningSet,
        old: RunningSet | None,
        switched: Callable[[], None] | None = None,
    ) -> None:
        """Route the endpoint's requests to `new` at once (`switched` is told then), then stop
        `old`: requests it is answering finish first (each container stops gracefully)."""
        self.serve(name, new)
        if switched is not None:
            switched()
        if old is not None:
            await old.stop()

    def serve(self, name: str, running: RunningSet) -> None:
        """Route the endpoint's requests to this set from now on (atomic, registry.py); several
        variants split them by weight."""
        if self.registry is None:
            raise ComposerError("the gateway is not listening yet")
        served = [
            (gateway_config(e.pipeline, e.containers, e.prepared), v.weight, e)
            for v in running.variants
            for e in v.instances
        ]
        if len(served) == 1:
            self.registry.put(served[0][0], health=served[0][2])
        else:
            self.registry.put_variants([(c, w, e) for c, w, e in served])

    def unserve(self, name: str) -> None:
        if self.registry is not None:
            self.registry.remove(name)


def failure_reason(exc: BaseException) -> str:
    """The error as FailureReason: its first line and as much of its end (the container's last
    log lines) as SageMaker's 1024 characters hold."""
    text = str(exc) or type(exc).__name__
    if len(text) <= MAX_FAILURE_REASON:
        return text
    head, _, rest = text.partition("\n")
    head = head[: MAX_FAILURE_REASON // 2]
    room = MAX_FAILURE_REASON - len(head) - 5
    return f"{head}\n...\n{rest[-room:]}" if room > 0 else head
