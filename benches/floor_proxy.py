"""The least a Python proxy can do: parse, forward, answer (no checks, metrics or errors).

benches/run.py puts it beside the gateway, in front of the same container, so the table shows
how much of the gateway's cost any extra hop in a Python process pays on the machine.
Usage: python benches/floor_proxy.py UPSTREAM_URL PORT
"""

from __future__ import annotations

import asyncio
import sys

import httptools

from composer.gateway.upstream import UpstreamPool


class _Proxy(asyncio.Protocol):
    def __init__(self, pool: UpstreamPool) -> None:
        self.pool = pool
        self.body: list[bytes] = []
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        body, self.body = b"".join(self.body), []
        asyncio.get_running_loop().create_task(self._forward(body))

    async def _forward(self, body: bytes) -> None:
        answer = await self.pool.post(body, {"Content-Type": "application/json"}, 1 << 23)
        data = answer.body or b""
        head = b"HTTP/1.1 %d OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
        if self.transport is not None:
            self.transport.write(head % (answer.status, len(data)) + data)


async def _main(upstream: str, port: int) -> None:
    pool = UpstreamPool(upstream)
    loop = asyncio.get_running_loop()
    await loop.create_server(lambda: _Proxy(pool), "127.0.0.1", port)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(_main(sys.argv[1], int(sys.argv[2])))
