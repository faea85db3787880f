"""A running gateway: the listening socket, both HTTP servers behind it, start and stop.

`Gateway` listens with the fast path (fastpath.py), which hands what it does not serve to
aiohttp's server (app.py); both answer from the same endpoints (registry.py) under the same
connection policy (connections.py). `ThreadedGateway` runs one on its own loop in a thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from typing import TypeVar

from aiohttp import web

from .app import build_app
from .config import GatewayConfig, GatewaySettings, Health
from .connections import Connections
from .control import ControlPlane
from .fastpath import FastPath
from .metrics import GatewayMetrics
from .registry import EndpointRegistry
from .trace import Trace

T = TypeVar("T")


class Gateway:
    """A started gateway on host:port in the caller's asyncio loop (port 0 = any free port).

    It serves `config`'s endpoint (None: none yet); `endpoints` (the registry) serves more, or
    others, by name. `control` answers the control plane's `POST /` (control.py). `trace`
    records every hop (trace.py); without one, a fresh one records them (bodies not kept).
    """

    def __init__(
        self,
        config: GatewayConfig | None,
        host: str = "127.0.0.1",
        port: int = 8080,
        health: Health | None = None,
        *,
        control: ControlPlane | None = None,
        trace: Trace | None = None,
    ) -> None:
        self.config = config
        self.host = host
        self.port = port
        shared = config if config is not None else GatewaySettings()
        self.trace = trace if trace is not None else Trace()
        self.endpoints = EndpointRegistry(GatewayMetrics(), shared, self.trace)
        if config is not None:
            self.endpoints.put(config, health)
        self.connections = Connections(shared.client_timeout)
        self.app = build_app(self.endpoints, self.connections, control)
        self._runner: web.AppRunner | None = None
        self._listener: asyncio.Server | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def start(self) -> None:
        connections = self.connections
        runner = web.AppRunner(self.app, handle_signals=False, **connections.server_options())
        await runner.setup()
        server = runner.server
        assert server is not None
        connections.attach(server)
        invoke = self.endpoints.invoke
        limit = self.endpoints.max_payload_bytes

        def protocol() -> FastPath:
            return FastPath(invoke, server, connections, limit)

        loop = asyncio.get_running_loop()
        try:
            listener = await loop.create_server(protocol, self.host, self.port, reuse_address=True)
        except OSError as e:
            await runner.cleanup()
            raise OSError(
                e.errno, f"the gateway cannot listen on {self.host}:{self.port}: {e.strerror}"
            ) from e
        self._runner = runner
        self._listener = listener
        self.port = int(listener.sockets[0].getsockname()[1])

    async def stop(self, grace: float = 30.0) -> None:
        """Stop accepting; answer what is in flight (up to `grace` seconds); close."""
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        runner, self._runner = self._runner, None
        if runner is not None:
            await self.connections.drain(grace)
            await runner.cleanup()

    async def serve_forever(self) -> None:
        """Start (if needed) and serve until cancelled; then stop cleanly."""
        if self._runner is None:
            await self.start()
        try:
            await asyncio.Event().wait()
        finally:
            await self.stop()


async def start_gateway(
    config: GatewayConfig | None,
    host: str = "127.0.0.1",
    port: int = 8080,
    health: Health | None = None,
    *,
    control: ControlPlane | None = None,
    trace: Trace | None = None,
) -> Gateway:
    """Start a gateway in the running loop; `await gateway.stop()` ends it."""
    gateway = Gateway(config, host, port, health, control=control, trace=trace)
    await gateway.start()
    return gateway


class ThreadedGateway:
    """A gateway on its own loop in a daemon thread, for blocking callers (tests, benchmarks)."""

    def __init__(
        self,
        config: GatewayConfig | None,
        host: str = "127.0.0.1",
        port: int = 0,
        health: Health | None = None,
        *,
        control: ControlPlane | None = None,
        trace: Trace | None = None,
    ) -> None:
        self.gateway = Gateway(config, host, port, health, control=control, trace=trace)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="composer-gateway", daemon=True
        )

    @property
    def url(self) -> str:
        return self.gateway.url

    def on_loop(self, fn: Callable[[], T]) -> T:
        """`fn()` run on the gateway's loop, e.g. `lambda: gw.gateway.endpoints.put(config)`."""

        async def call() -> T:
            return fn()

        return asyncio.run_coroutine_threadsafe(call(), self._loop).result(timeout=30)

    def start(self) -> ThreadedGateway:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.gateway.start(), self._loop).result(timeout=30)
        return self

    def stop(self, grace: float = 30.0) -> None:
        if not self._thread.is_alive():
            return
        with contextlib.suppress(Exception):
            stopping = asyncio.run_coroutine_threadsafe(self.gateway.stop(grace), self._loop)
            stopping.result(timeout=grace + 30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        self._loop.close()

    def __enter__(self) -> ThreadedGateway:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
