"""`sm-compose local`: an empty local SageMaker, control plane and runtime on one port.

The gateway (composer/gateway/) serves the runtime and hands `POST /` to the control plane
(operations.py); the control plane starts endpoints' containers (lifecycle.py) and puts them in
the gateway's registry. A signal stops every endpoint's containers, then the gateway.
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import tempfile
from collections.abc import Callable
from pathlib import Path

from ..gateway import start_gateway
from ..runners.contract import Runner
from ..runners.endpoint import check_listen, url_host
from .lifecycle import Lifecycle
from .operations import LocalSageMaker

ENDPOINT_VARIABLES = ("AWS_ENDPOINT_URL_SAGEMAKER", "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME")


def ready_line(url: str) -> str:
    """The one line `local` prints once it listens: where, and what to export."""
    exports = "export " + " ".join(f"{name}={url}" for name in ENDPOINT_VARIABLES)
    return f"local SageMaker ready at {url}; point boto3, the SDK and the AWS CLI at it: {exports}"


async def serve_local(
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    engine_runner: Runner | None = None,
    engine_flag: str = "--engine podman (or docker)",
    out: Callable[[str], None] = print,
    stop: asyncio.Event | None = None,
) -> int:
    """Serve until `stop` is set or SIGINT/SIGTERM comes; every container stopped; exit 0."""
    loop = asyncio.get_running_loop()
    stop = stop or asyncio.Event()
    if port:
        check_listen(host, port)
    root = Path(tempfile.mkdtemp(prefix="sm-compose-local-"))
    lifecycle = Lifecycle(root, engine_runner=engine_runner, engine_flag=engine_flag, out=out)
    control = LocalSageMaker(lifecycle)
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        gateway = await start_gateway(None, host, port, control=control)
        lifecycle.registry = gateway.endpoints
        try:
            out(ready_line(f"http://{url_host(host)}:{gateway.port}"))
            await stop.wait()
            out("sm-compose: stopping")
        finally:
            await control.aclose()
            await gateway.stop()
        return 0
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        shutil.rmtree(root, ignore_errors=True)
