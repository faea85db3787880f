"""`sm-compose up`: the whole endpoint on one machine, behind the SageMaker-compatible gateway.

Each container runs its generated `serve` from its build context (the files the image gets), in
its own cached Python environment, on its own loopback port, with its model data extracted as
SageMaker would. The gateway in front of them speaks SageMaker Runtime's protocol.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import sys
import tempfile
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import aiohttp

from ..errors import ComposerError, UsageError
from ..gateway import GatewayConfig, Upstream, start_gateway
from ..gateway.config import AsyncSettings
from ..render.context import write_build_context
from ..spec.models import Container, Pipeline
from .envs import ensure_env, python_of
from .modeldata import prepare_model_dir
from .multimodel import LocalModelSource
from .supervisor import DEFAULT_STARTUP_WINDOW, LogSink, ManagedContainer, gather_ready

SAFE_PORT_BASE = 21000
_BASE_ENV_KEYS = ("HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "SSL_CERT_FILE")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def state_dir(pipeline: Pipeline) -> Path:
    """Per-pipeline working files (build contexts, logs, model folders) beside the spec."""
    return pipeline.base_dir / ".composer" / pipeline.name


def container_env(container: Container, index: int, port: int) -> dict[str, str]:
    """What the platform gives a container, plus the spec's Environment."""
    low = SAFE_PORT_BASE + 1000 * index
    env = {
        "SAGEMAKER_BIND_TO_PORT": str(port),
        "SAGEMAKER_SAFE_PORT_RANGE": f"{low}-{low + 999}",
    }
    env.update(container.model_env)  # the spec's Environment, plus SAGEMAKER_MULTI_MODEL
    return env


def model_dir_for(
    pipeline: Pipeline, container: Container, progress: Callable[[str], None]
) -> Path:
    """The container's /opt/ml/model: its model data extracted (or downloaded) as SageMaker does.

    A multi-model container gets an empty folder instead: its models are extracted into it one
    by one, on first use (runners/multimodel.py).
    """
    data = container.model_data
    if container.multi_model:
        folder = state_dir(pipeline) / "models" / container.hostname / "multi-model"
        shutil.rmtree(folder, ignore_errors=True)  # what a previous run loaded is gone
        folder.mkdir(parents=True)
        return folder
    source = pipeline.resolve(data) if data is not None and not data.startswith("s3://") else None
    if data is not None:
        progress(f"{container.hostname}: preparing model data")
    work = state_dir(pipeline) / "models" / container.hostname
    return prepare_model_dir(data, source, work)


@dataclass
class Prepared:
    """A container ready to start: how to run it and where."""

    container: Container
    argv: list[str]
    env: dict[str, str]
    cwd: Path | None
    port: int
    stop_argv: list[str] | None = None
    #: Multi-model: (folder on this machine, the same folder as the container sees it).
    models: tuple[Path, str] | None = None
    #: Runs on this machine (not in an engine): its `serve` keeps its run files (nginx.conf,
    #: pid, gunicorn socket) in a folder `up` owns, so a kill -9 leaves nothing behind.
    on_host: bool = False


class Runner(Protocol):
    """Turns each container of a pipeline into a command line (processes or an OCI engine)."""

    def prepare(
        self, pipeline: Pipeline, host: str, progress: Callable[[str], None]
    ) -> list[Prepared]: ...


@dataclass
class ProcessRunner:
    """Runs `serve` from each build context in a cached environment: no engine needed."""

    listen_host: str = "127.0.0.1"

    def prepare(
        self, pipeline: Pipeline, host: str, progress: Callable[[str], None]
    ) -> list[Prepared]:
        images = [c.hostname for c in pipeline.containers if c.image is not None]
        if images:
            raise UsageError(
                f"container {', '.join(images)} uses image:; the process runner runs build: "
                "containers only. Run it with an OCI engine: sm-compose up PIPELINE --engine "
                "podman (or docker)"
            )
        if not (shutil.which("nginx") or Path("/usr/sbin/nginx").exists()):
            raise ComposerError(
                "nginx is not installed; every container serves through nginx as in its image "
                "(run scripts/setup.sh, or apt-get install nginx-light)"
            )
        work = state_dir(pipeline)
        out: list[Prepared] = []
        for index, c in enumerate(pipeline.containers):
            ctx = write_build_context(pipeline, c, work / "build" / c.hostname)
            env_dir = ensure_env(
                ctx.path / "requirements.txt", label=c.hostname, on_progress=progress
            )
            model_dir = model_dir_for(pipeline, c, progress)
            port = free_port(self.listen_host)
            env = _base_env()
            env.update(container_env(c, index, port))
            env["COMPOSER_LISTEN_HOST"] = self.listen_host
            env["SM_MODEL_DIR"] = str(model_dir)
            argv = [str(python_of(env_dir)), str(ctx.path / "serve"), "serve"]
            models = (model_dir, str(model_dir)) if c.multi_model else None
            out.append(Prepared(c, argv, env, ctx.path, port, models=models, on_host=True))
        return out


def _base_env() -> dict[str, str]:
    env = {k: os.environ[k] for k in _BASE_ENV_KEYS if k in os.environ}
    path = os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin")
    if "/usr/sbin" not in path.split(":"):
        path += ":/usr/sbin:/sbin"
    env["PATH"] = path
    return env


@dataclass
class LocalEndpoint:
    """A running local endpoint: its containers and its gateway."""

    pipeline: Pipeline
    containers: list[ManagedContainer]
    gateway_url: str

    def __post_init__(self) -> None:
        self._by_host = {c.hostname: c for c in self.containers}

    def is_up(self, hostname: str) -> bool:
        """Asked by the gateway before every container call: a dict lookup, not a scan."""
        found = self._by_host.get(hostname)
        return found is not None and found.is_up()


def gateway_config(
    pipeline: Pipeline,
    containers: Sequence[ManagedContainer],
    prepared: Sequence[Prepared] = (),
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
        region=pipeline.aws.region or "us-east-1",
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
) -> AsyncIterator[LocalEndpoint]:
    """Every container up and pinged, the gateway listening; all stopped on exit.

    `startup_timeout` overrides the spec's startup window (seconds each container has to pass
    /ping, at the first start and at every restart), e.g. to fail fast on a container that
    never becomes healthy.
    """
    runner = runner or ProcessRunner()
    loop = asyncio.get_running_loop()
    if port:
        check_listen(host, port)
    prepared = await loop.run_in_executor(None, runner.prepare, pipeline, host, progress or out)
    work = state_dir(pipeline)
    width = max(len(p.container.hostname) for p in prepared)
    sink = LogSink(width)
    window = float(
        startup_timeout or pipeline.endpoint.startup_health_check_timeout or DEFAULT_STARTUP_WINDOW
    )
    # Short (a unix socket path has 108 bytes) and removed when `up` ends, whatever its
    # containers' serve processes could not clean up themselves (killed by SIGKILL).
    scratch = Path(tempfile.mkdtemp(prefix="sm-compose-"))
    scratch.chmod(0o755)  # nginx workers (nobody when `up` runs as root) reach the sockets
    managed = [
        ManagedContainer(
            hostname=p.container.hostname,
            index=i,
            argv=p.argv,
            env={
                **p.env,
                **({"COMPOSER_RUN_DIR": str(scratch / str(i))} if p.on_host else {}),
                **(extra_env or {}),
            },
            url=f"http://127.0.0.1:{p.port}",
            log_path=work / "logs" / f"{p.container.hostname}.log",
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
    gateway = None
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        try:
            for m in managed:
                await m.start()
                out(f"{m.hostname:<{width}}  {m.url}  (log {m.log_path})")
            await gather_ready(managed, session)
            endpoint = LocalEndpoint(pipeline, managed, "")
            gateway = await start_gateway(
                gateway_config(pipeline, managed, prepared), host, port, health=endpoint
            )
            endpoint.gateway_url = f"http://{_url_host(host)}:{gateway.port}"
            supervisors = [
                asyncio.create_task(m.supervise(session, lambda msg: out(f"sm-compose: {msg}")))
                for m in managed
            ]
            yield endpoint
        finally:
            for task in supervisors:
                task.cancel()
            if gateway is not None:
                await gateway.stop()
            await asyncio.gather(*(m.stop() for m in managed), return_exceptions=True)
            shutil.rmtree(scratch, ignore_errors=True)


async def serve_pipeline(
    pipeline: Pipeline,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    runner: Runner | None = None,
    out: Callable[[str], None] = print,
    progress: Callable[[str], None] | None = None,
    stop: asyncio.Event | None = None,
    startup_timeout: float | None = None,
) -> int:
    """Run until `stop` is set (or SIGINT/SIGTERM); return the exit status."""
    loop = asyncio.get_running_loop()
    stop = stop or asyncio.Event()
    ready = asyncio.Event()

    async def serve() -> None:
        async with running_endpoint(
            pipeline,
            host=host,
            port=port,
            runner=runner,
            out=out,
            progress=progress,
            startup_timeout=startup_timeout,
        ) as endpoint:
            ready.set()
            out(
                f"{pipeline.name} ready at {endpoint.gateway_url} "
                f"(endpoint {pipeline.name}, {pipeline.mode}, {len(endpoint.containers)} "
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


def _url_host(host: str) -> str:
    if host in ("0.0.0.0", ""):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


def run_up(
    pipeline: Pipeline,
    *,
    host: str,
    port: int,
    runner: Runner | None = None,
    startup_timeout: float | None = None,
) -> int:
    """Blocking entry point for the CLI."""
    from rich.console import Console

    console = Console(stderr=True)
    status = console.status("preparing containers") if console.is_terminal else None

    def progress(message: str) -> None:
        if status is not None:
            status.update(message)
        else:
            print(message, file=sys.stderr, flush=True)

    def out(message: str) -> None:
        if status is not None:
            status.stop()
        print(message, flush=True)

    try:
        if status is not None:
            status.start()
        return asyncio.run(
            serve_pipeline(
                pipeline,
                host=host,
                port=port,
                runner=runner,
                out=out,
                progress=progress,
                startup_timeout=startup_timeout,
            )
        )
    finally:
        if status is not None:
            status.stop()
