"""Endpoints' containers: a set started beside what serves, switched in at once, stopped.

CreateEndpoint, UpdateEndpoint, DeleteEndpoint and the reloads of `up --watch` and `local
--watch` (watch.py) all come down to the same steps: start a set of containers
(`start_pipeline`, runners/endpoint.py's `started_containers`) until each passes /ping, then
`switch`: serve it under the endpoint's name in the gateway's registry (an atomic replace) and
stop what it replaced once its requests in flight are answered. A set that fails to start never
reaches the registry, so what served goes on serving. A reload of one container is a set of
one; `local --watch` reloads whole copies (`add_copies`).

A change of weights serves the same copies again, and a change of instance count starts only the
added copies (or stops only the removed ones): the registry keeps serving a copy it already
serves as it was, so the sessions open on it stay open.

Names: a variant's copies are numbered `local-1`, `local-2`, ... (never twice for one endpoint
name), which is the INSTANCE-ID of their log streams (`VARIANT/INSTANCE-ID[/HOSTNAME]`), of
their log files (`logs/ENDPOINT/VARIANT/INSTANCE-ID/HOSTNAME.log`) and of their metrics; their
printed lines are prefixed `ENDPOINT/VARIANT/INSTANCE-ID/HOSTNAME |`, without the variant when
the endpoint has one, and without the instance when the variant has one.
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
from ..runners.endpoint import LocalEndpoint, started_containers
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
    #: instance id -> what stops that copy alone (none for a copy started elsewhere: `up`'s).
    stops: dict[str, contextlib.AsyncExitStack] = field(default_factory=dict)
    #: What its copies run (more copies start from it when the instance count grows).
    plan: ModelPlan | None = None

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
    async_config: dict[str, Any] | None = None  # the endpoint config's AsyncInferenceConfig

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
        #: Endpoint name -> its instances' numbers: never one twice for one name in this
        #: process, so a new copy's log files never overwrite an old one's.
        self._numbers: dict[str, itertools.count[int]] = {}
        #: The control plane's region (operations.py sets it): the one its ARNs name.
        self.region: str | None = None
        #: Endpoints whose lines carry no endpoint name (`up`'s own, as `up` prints them).
        self.unscoped: set[str] = set()
        self._reloads = itertools.count(1)  # `up --watch`'s sets' folders (`folder`)

    def runner_for(self, plan: ModelPlan) -> Runner:
        """Local processes when every image is ours; else the engine, if `local` has one."""
        images = plan.engine_images
        if not images:
            return ProcessRunner(self.host)
        if self.engine_runner is None:
            raise ComposerError(
                f"image {images[0]} was not made by `sm-compose build` (or `push`) on this "
                "machine, nor in a lock file given to it (`local --pipeline FILE`), so it runs "
                f"only under an OCI engine: start the local SageMaker with {self.engine_flag}"
            )
        return self.engine_runner

    def log_dir(self, endpoint_name: str, variant_name: str, instance_id: str) -> Path:
        """Where a copy's containers log: `logs/ENDPOINT/VARIANT/INSTANCE-ID/HOSTNAME.log`, the
        local twin of SageMaker's log group and stream names."""
        return self.root / "logs" / endpoint_name / variant_name / instance_id

    def scope(self, endpoint_name: str, variant: str | None, instance: str | None) -> str:
        """A log line's prefix before the hostname: `endpoint/variant/instance/`, each part only
        where it tells copies apart (several variants; several instances of the variant)."""
        parts = [] if endpoint_name in self.unscoped else [endpoint_name]
        parts += [p for p in (variant, instance) if p is not None]
        return "".join(f"{p}/" for p in parts)

    def relabel(self, endpoint_name: str, running: RunningSet) -> None:
        """Each copy's log prefix, once the set's variants and counts are what they are."""
        several = len(running.variants) > 1
        for v in running.variants:
            for e in v.instances:
                e.relabel(
                    self.scope(
                        endpoint_name,
                        v.name if several else None,
                        e.instance_id if len(v.instances) > 1 else None,
                    )
                )

    async def start(
        self,
        endpoint_name: str,
        config_name: str,
        variants: list[tuple[ModelPlan, dict[str, Any], list[str]]],
        async_config: dict[str, Any] | None,
    ) -> RunningSet:
        """A new set for the endpoint: each variant's (plan, variant, images) started, every
        container pinged; raises ComposerError if not (and stops what had started)."""
        running = RunningSet(
            config_name, [], contextlib.AsyncExitStack(), async_config=async_config
        )
        try:
            for plan, variant, images in variants:
                started = RunningVariant(variant, images, [], plan=plan)
                running.variants.append(started)
                await self.add_copies(
                    endpoint_name,
                    running,
                    started,
                    plan,
                    instance_count(variant),
                    async_config,
                    several=len(variants) > 1,
                )
        except BaseException:
            await running.stop()
            raise
        return running

    async def add_copies(
        self,
        endpoint_name: str,
        running: RunningSet,
        variant: RunningVariant,
        plan: ModelPlan,
        count: int,
        async_config: dict[str, Any] | None,
        *,
        several: bool,
        progress: Callable[[str], None] | None = None,
    ) -> list[LocalEndpoint]:
        """`count` more copies of a variant's containers, started and pinged (not served yet);
        each stops alone (`stop_copies`) or with the set. None is left if one fails.
        `progress`: where their preparation (an environment's build) is shown."""
        numbers = self._numbers.setdefault(endpoint_name, itertools.count(1))
        taken = {e.instance_id for v in running.variants for e in v.instances}  # `up`'s local-1
        total = len(variant.instances) + count
        added: list[LocalEndpoint] = []
        try:
            for _ in range(count):
                instance_id = f"local-{next(numbers)}"
                while instance_id in taken:
                    instance_id = f"local-{next(numbers)}"
                folder = self.root / "endpoints" / endpoint_name / variant.name / instance_id
                pipeline = pipeline_for(
                    plan, endpoint_name, variant.variant, folder, async_config, self.region
                )
                stack = contextlib.AsyncExitStack()
                running.stack.push_async_callback(stack.aclose)
                copy = await self.start_pipeline(
                    pipeline,
                    stack,
                    runner=self.runner_for(plan),
                    scope=self.scope(
                        endpoint_name,
                        variant.name if several else None,
                        instance_id if total > 1 else None,
                    ),
                    log_dir=self.log_dir(endpoint_name, variant.name, instance_id),
                    instance_id=instance_id,
                    progress=progress,
                )
                variant.stops[instance_id] = stack
                added.append(copy)
        except BaseException:
            await self.stop_copies(variant, added)
            raise
        variant.instances.extend(added)
        return added

    async def stop_copies(self, variant: RunningVariant, copies: list[LocalEndpoint]) -> None:
        """Stop these copies of the variant (no longer served), leaving the others running."""
        for copy in copies:
            variant.instances = [e for e in variant.instances if e is not copy]
            stack = variant.stops.pop(copy.instance_id, None)
            if stack is not None:
                await stack.aclose()

    def folder(self, endpoint_name: str) -> Path:
        """A fresh folder for one new set's working files, never a running set's."""
        return self.root / "reloads" / f"{endpoint_name}-{next(self._reloads)}"

    async def start_pipeline(
        self,
        pipeline: Pipeline,
        stack: contextlib.AsyncExitStack,
        *,
        runner: Runner | None,
        scope: str = "",
        progress: Callable[[str], None] | None = None,
        startup_timeout: float | None = None,
        log_dir: Path | None = None,
        instance_id: str = "local-1",
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
                log_dir=log_dir,
                instance_id=instance_id,
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
        variants split them by weight. A copy served already goes on as it was (registry.py's
        `put_variants`): its sessions stay open."""
        if self.registry is None:
            raise ComposerError("the gateway is not listening yet")
        served = [(e.config(), v.weight, e) for v in running.variants for e in v.instances]
        if len(served) == 1:
            self.registry.put(served[0][0], health=served[0][2])
        else:
            self.registry.put_variants([(c, w, e) for c, w, e in served])
        self.relabel(name, running)

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
