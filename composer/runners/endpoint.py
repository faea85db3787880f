"""The endpoint lifecycle: a pipeline's containers started, pinged, supervised and stopped,
behind the SageMaker-compatible gateway.

`running_endpoint` is the whole endpoint on this machine as a context manager (what `up` and a
local `transform` run); `started_containers` is its set of containers alone, for a gateway that
serves several (composer/localsm/); `serve_until_stopped` keeps one in the foreground until
SIGINT/SIGTERM.
The runner (runners/contract.py) says how each container runs; runners/supervisor.py keeps each
one alive; `gateway_config` says what the gateway serves.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import socket
import tempfile
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import aiohttp

from ..errors import ComposerError
from ..gateway import ControlPlane, Gateway, GatewayConfig, Trace, Upstream, start_gateway
from ..gateway.config import AsyncSettings
from ..sagemaker_facts import DEFAULT_REGION
from ..spec.models import Pipeline
from .contract import Prepared, Runner, state_dir
from .multimodel import LocalModelSource
from .process import ProcessRunner
from .supervisor import DEFAULT_STARTUP_WINDOW, LogSink, ManagedContainer, gather_ready


@dataclass
class LocalEndpoint:
    """A running local endpoint: its containers and (once one serves it) its gateway."""

    pipeline: Pipeline
    containers: list[ManagedContainer]
    gateway_url: str
    prepared: list[Prepared] = field(default_factory=list)
    gateway: Gateway | None = None
    #: Which copy of its variant this set is (GatewayConfig.instance_id, its log streams).
    instance_id: str = "local-1"

    def __post_init__(self) -> None:
        self._by_host = {c.hostname: c for c in self.containers}
        self._config: GatewayConfig | None = None

    def is_up(self, hostname: str) -> bool:
        """Asked by the gateway before every container call: a dict lookup, not a scan."""
        found = self._by_host.get(hostname)
        return found is not None and found.is_up()

    def relabel(self, scope: str) -> None:
        """Prefix this set's log lines with `scope` from now on (e.g. `endpoint/variant/`)."""
        for container in self.containers:
            container.sink.scope = scope

    def config(self) -> GatewayConfig:
        """What the gateway serves for this set, made once: serving it again (new weights,
        other copies added or removed) gives the registry an equal config, which keeps this
        set's gateway endpoint and its open sessions."""
        if self._config is None:
            self._config = gateway_config(
                self.pipeline, self.containers, self.prepared, self.instance_id
            )
        return self._config


def gateway_config(
    pipeline: Pipeline,
    containers: Sequence[ManagedContainer],
    prepared: Sequence[Prepared] = (),
    instance_id: str = "local-1",
) -> GatewayConfig:
    by_host = {c.hostname: c for c in pipeline.containers}
    sources = {p.container.hostname: _model_source(pipeline, p) for p in prepared if p.models}
    return GatewayConfig(
        endpoint_name=pipeline.name,
        mode=pipeline.mode,
        containers=tuple(
            Upstream(
                hostname=m.hostname,
                url=m.url,
                invocation_timeout=by_host[m.hostname].invocation_timeout,
                log_path=str(m.log_path),
                model_source=sources.get(m.hostname),
            )
            for m in containers
        ),
        variant_name=pipeline.endpoint.variant_name,
        instance_id=instance_id,
        region=pipeline.aws.region or DEFAULT_REGION,
        async_inference=_async_settings(pipeline),
    )


def _model_source(pipeline: Pipeline, prepared: Prepared) -> LocalModelSource:
    assert prepared.models is not None and prepared.container.model_data is not None
    data = prepared.container.model_data
    prefix = data if data.startswith("s3://") else str(pipeline.resolve(data))
    folder, visible = prepared.models
    return LocalModelSource(prefix, folder, visible)


def _async_settings(pipeline: Pipeline) -> AsyncSettings | None:
    """The spec's async: block as the gateway serves it (unset concurrency: 4 at a time)."""
    spec = pipeline.async_inference
    if spec is None:
        return None
    return AsyncSettings(
        output_path=spec.output_path,
        failure_path=spec.failure_path,
        max_concurrent_invocations=spec.max_concurrent_invocations_per_instance or 4,
    )


@contextlib.asynccontextmanager
async def started_containers(
    pipeline: Pipeline,
    *,
    host: str = "127.0.0.1",
    runner: Runner | None = None,
    out: Callable[[str], None] = print,
    progress: Callable[[str], None] | None = None,
    extra_env: dict[str, str] | None = None,
    startup_timeout: float | None = None,
    scope: str = "",
    log_stream: IO[str] | None = None,
    log_dir: Path | None = None,
    instance_id: str = "local-1",
) -> AsyncIterator[LocalEndpoint]:
    """A set of the pipeline's containers, every one up and pinged and supervised; all stopped on
    exit. No gateway: `set.config()` is what one serves. `running_endpoint` runs one set behind
    its own gateway; the local SageMaker (composer/localsm/) runs one set per endpoint and
    variant instance (more while an update starts) behind one.

    `startup_timeout` overrides the spec's startup window (seconds each container has to pass
    /ping, at the first start and at every restart). `scope` prefixes each log line (e.g.
    `endpoint/`), to tell endpoints apart; `log_stream` is where the lines go besides each
    container's log file (standard output when None). `log_dir` holds those files,
    `HOSTNAME.log` (default: the pipeline's state folder's `logs/`); `instance_id` names the set
    as a copy of its variant (its log streams' `VARIANT/INSTANCE-ID`).
    """
    runner = runner or ProcessRunner()
    loop = asyncio.get_running_loop()
    prepared = await loop.run_in_executor(None, runner.prepare, pipeline, host, progress or out)
    logs = log_dir or state_dir(pipeline) / "logs"
    width = max(len(hostname) for hostname in pipeline.siblings)  # a part's, as its whole's
    sink = LogSink(width, log_stream, scope=scope)
    window = float(
        startup_timeout or pipeline.endpoint.startup_health_check_timeout or DEFAULT_STARTUP_WINDOW
    )
    # Short (a unix socket path has 108 bytes) and removed when the set stops, whatever its
    # containers' serve processes could not clean up themselves (killed by SIGKILL).
    scratch = Path(tempfile.mkdtemp(prefix="sm-compose-"))
    scratch.chmod(0o755)  # nginx workers (nobody when `up` runs as root) reach the sockets
    managed = [
        ManagedContainer(
            hostname=p.container.hostname,
            index=pipeline.position(p.container.hostname),
            argv=p.argv,
            env={
                **p.env,
                **({"COMPOSER_RUN_DIR": str(scratch / str(i))} if p.on_host else {}),
                **(extra_env or {}),
            },
            url=f"http://127.0.0.1:{p.port}",
            log_path=logs / f"{p.container.hostname}.log",
            sink=sink,
            startup_window=window,
            cwd=p.cwd,
            stop_argv=p.stop_argv,
        )
        for i, p in enumerate(prepared)
    ]
    for m in managed:
        with contextlib.suppress(FileNotFoundError):
            m.log_path.unlink()
    supervisors: list[asyncio.Task[None]] = []
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        try:
            for m in managed:
                await m.start()
                out(f"{scope}{m.hostname:<{width}}  {m.url}  (log {m.log_path})")
            await gather_ready(managed, session)
            supervisors = [
                asyncio.create_task(
                    m.supervise(session, lambda msg: out(f"sm-compose: {scope}{msg}"))
                )
                for m in managed
            ]
            yield LocalEndpoint(pipeline, managed, "", prepared, instance_id=instance_id)
        finally:
            for task in supervisors:
                task.cancel()
            await asyncio.gather(*(m.stop() for m in managed), return_exceptions=True)
            shutil.rmtree(scratch, ignore_errors=True)


@contextlib.asynccontextmanager
async def running_endpoint(
    pipeline: Pipeline,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    runner: Runner | None = None,
    out: Callable[[str], None] = print,
    progress: Callable[[str], None] | None = None,
    extra_env: dict[str, str] | None = None,
    startup_timeout: float | None = None,
    control: ControlPlane | None = None,
    log_stream: IO[str] | None = None,
    trace: Trace | None = None,
) -> AsyncIterator[LocalEndpoint]:
    """Every container up and pinged, the gateway listening; all stopped on exit.

    `startup_timeout` overrides the spec's startup window (seconds each container has to pass
    /ping, at the first start and at every restart), e.g. to fail fast on a container that
    never becomes healthy. `control` answers the control plane on the same port. `trace`: the
    gateway's per-hop trace (`up --trace`); by default one that keeps no bodies and prints nothing.
    """
    if port:
        check_listen(host, port)
    started = started_containers(
        pipeline,
        host=host,
        runner=runner,
        out=out,
        progress=progress,
        extra_env=extra_env,
        startup_timeout=startup_timeout,
        log_stream=log_stream,
    )
    async with started as endpoint:
        gateway = await start_gateway(
            endpoint.config(),
            host,
            port,
            health=endpoint,
            control=control,
            trace=trace,
        )
        endpoint.gateway = gateway
        endpoint.gateway_url = f"http://{url_host(host)}:{gateway.port}"
        try:
            yield endpoint
        finally:
            await gateway.stop()


async def serve_until_stopped(
    endpoint: contextlib.AbstractAsyncContextManager[LocalEndpoint],
    *,
    out: Callable[[str], None] = print,
    stop: asyncio.Event | None = None,
) -> int:
    """Run `endpoint` (a `running_endpoint(...)`) until `stop` is set or SIGINT/SIGTERM comes;
    return the exit status. A signal while it starts stops the start and cleans up."""
    loop = asyncio.get_running_loop()
    stop = stop or asyncio.Event()
    ready = asyncio.Event()

    async def serve() -> None:
        async with endpoint as running:
            ready.set()
            pipeline = running.pipeline
            out(
                f"{pipeline.name} ready at {running.gateway_url} "
                f"(endpoint {pipeline.name}, {pipeline.mode}, {len(running.containers)} "
                "containers)"
            )
            await stop.wait()
            out("sm-compose: stopping")

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        task = asyncio.create_task(serve())
        stopper = asyncio.create_task(stop.wait())
        await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        if not task.done() and not ready.is_set():
            task.cancel()  # stopped while starting: the context manager cleans up
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return 0
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def check_listen(host: str, port: int) -> None:
    """Fail before the slow start of containers if the gateway's address is taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            raise ComposerError(
                f"the gateway cannot listen on {host}:{port}: {exc.strerror}; "
                "choose another with --port (or --host)"
            ) from None


def url_host(host: str) -> str:
    """A listening address as a URL's host (every address: reach it on loopback)."""
    if host in ("0.0.0.0", ""):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host
