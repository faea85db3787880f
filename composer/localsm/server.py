"""`sm-compose local`: an empty local SageMaker, control plane and runtime on one port; and
`up`'s endpoint served with the same control plane.

The gateway (composer/gateway/) serves the runtime and hands `POST /` to the control plane
(operations.py); the control plane starts endpoints' containers (lifecycle.py) and puts them in
the gateway's registry. A signal stops every endpoint's containers, then the gateway.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import tempfile
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..gateway import Trace, start_gateway
from ..render.builds import BuiltFrom
from ..render.sagemaker import placeholder_artifacts, render_requests
from ..runners.contract import Runner
from ..runners.endpoint import LocalEndpoint, check_listen, running_endpoint, url_host
from ..runners.oci import EngineRunner, remove_orphans
from ..runners.process import ProcessRunner
from ..runners.supervisor import pid_alive
from ..spec.models import Pipeline
from .errors import ApiError
from .lifecycle import Lifecycle
from .operations import LocalSageMaker
from .watch import EndpointWatcher, Watcher

ENDPOINT_VARIABLES = ("AWS_ENDPOINT_URL_SAGEMAKER", "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME")
ROOT_PREFIX = "sm-compose-local-"
_OWNER = "owner.pid"


def working_root() -> Path:
    """A fresh folder for the endpoints' working files, owned by this process.

    Removed when the process ends; one whose owner was killed (SIGKILL) is removed by the next
    `local` or `up` instead.
    """
    base = Path(tempfile.gettempdir())
    for stale in base.glob(f"{ROOT_PREFIX}*"):
        try:
            owner = int((stale / _OWNER).read_text())
        except (OSError, ValueError):
            continue  # not ours to judge (being made, or made by something else)
        if owner != os.getpid() and not pid_alive(owner):
            shutil.rmtree(stale, ignore_errors=True)
    root = Path(tempfile.mkdtemp(prefix=ROOT_PREFIX))
    (root / _OWNER).write_text(str(os.getpid()))
    return root


def ready_line(url: str) -> str:
    """The one line `local` prints once it listens: where, and what to export."""
    exports = "export " + " ".join(f"{name}={url}" for name in ENDPOINT_VARIABLES)
    return f"local SageMaker ready at {url}; point boto3, the SDK and the AWS CLI at it: {exports}"


@contextlib.asynccontextmanager
async def pipeline_with_control_plane(
    pipeline: Pipeline,
    *,
    runner: Runner | None = None,
    out: Callable[[str], None] = print,
    known_images: Mapping[str, BuiltFrom] | None = None,
    watch: str | None = None,
    **running: Any,
) -> AsyncIterator[LocalEndpoint]:
    """`up`: the pipeline's endpoint (`running_endpoint`), with the control plane on its port.

    Its model, endpoint config and endpoint show in Describe and List calls (created through the
    same operations a client calls); more endpoints can be created beside it. `known_images`:
    what lock files map to build folders (the pipeline's own, read by the CLI). `watch`: the
    pipeline file, watched with its containers' folders (`up --watch`, watch.py), and the build
    folders of endpoints created beside it through the API, as `local --watch` watches them.
    """
    root = working_root()
    engine = runner if runner is not None and not isinstance(runner, ProcessRunner) else None
    lifecycle = Lifecycle(root, engine_runner=engine, out=out)
    control = LocalSageMaker(lifecycle, known_images=known_images)
    watcher: Watcher | None = None
    try:
        started = running_endpoint(pipeline, runner=runner, out=out, control=control, **running)
        async with started as endpoint:
            assert endpoint.gateway is not None
            lifecycle.registry = endpoint.gateway.endpoints
            try:
                await control.adopt(local_requests(pipeline), endpoint)
            except ApiError as exc:  # the endpoint serves all the same; say why it is not listed
                out(f"sm-compose: {pipeline.name} is not in the control plane's lists: {exc}")
            if watch is None:
                yield endpoint
                return
            watcher = Watcher(
                watch,
                endpoint,
                lifecycle,
                runner=runner,
                startup_timeout=running.get("startup_timeout"),
                out=out,
                on_reloaded=lambda new: control.reloaded(new.name, deployed_images(new)),
            )
            # its own pipeline (watcher), and the endpoints created beside it through the API
            watching = [
                asyncio.create_task(watcher.run()),
                asyncio.create_task(EndpointWatcher(control, out, quiet=True).run()),
            ]
            try:
                yield endpoint
            finally:
                for task in watching:
                    task.cancel()
                for task in watching:
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
    finally:
        # Once the gateway has drained and stopped: what reloads and the control plane started.
        if watcher is not None:
            await watcher.aclose()
        await control.aclose()
        shutil.rmtree(root, ignore_errors=True)


def local_requests(pipeline: Pipeline) -> dict[str, Any]:
    """The pipeline's SageMaker requests as `up` runs it: local model data as file:// URIs."""
    artifacts = placeholder_artifacts(pipeline)
    urls = dict(artifacts.model_data_urls)
    for c in pipeline.containers:
        if c.model_data is not None and not c.model_data.startswith("s3://"):
            urls[c.hostname] = pipeline.resolve(c.model_data).as_uri()
    requests = render_requests(pipeline, replace(artifacts, model_data_urls=urls))
    return {
        "model": requests.model,
        "config": requests.endpoint_config,
        "endpoint": requests.endpoint,
    }


def deployed_images(pipeline: Pipeline) -> list[str]:
    """The images DescribeEndpoint lists for `up`'s endpoint: its CreateModel's."""
    model = local_requests(pipeline)["model"]
    return [c["Image"] for c in model.get("Containers") or [model["PrimaryContainer"]]]


async def serve_local(
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    engine_runner: Runner | None = None,
    engine_flag: str = "--engine podman (or docker)",
    out: Callable[[str], None] = print,
    stop: asyncio.Event | None = None,
    trace: Trace | None = None,
    known_images: Mapping[str, BuiltFrom] | None = None,
    watch: bool = False,
) -> int:
    """Serve until `stop` is set or SIGINT/SIGTERM comes; every container stopped; exit 0.

    `known_images`: image references lock files map to build folders (`--pipeline`). `watch`:
    reload endpoints whose containers run from build folders when one changes (watch.py)."""
    loop = asyncio.get_running_loop()
    stop = stop or asyncio.Event()
    if port:
        check_listen(host, port)
    if isinstance(engine_runner, EngineRunner):  # what a killed `local` left running
        await loop.run_in_executor(None, remove_orphans, engine_runner.engine, out)
    root = working_root()
    lifecycle = Lifecycle(root, engine_runner=engine_runner, engine_flag=engine_flag, out=out)
    control = LocalSageMaker(lifecycle, known_images=known_images)
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        gateway = await start_gateway(None, host, port, control=control, trace=trace)
        lifecycle.registry = gateway.endpoints
        watching = asyncio.create_task(EndpointWatcher(control, out).run()) if watch else None
        try:
            out(ready_line(f"http://{url_host(host)}:{gateway.port}"))
            await stop.wait()
            out("sm-compose: stopping")
        finally:
            if watching is not None:
                watching.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watching
            await gateway.stop()  # answers what is in flight, as `up` does, then closes
            await control.aclose()
        return 0
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        shutil.rmtree(root, ignore_errors=True)
