"""The gateway's HTTP/1.1 client to its containers: pooled keep-alive connections, httptools.

Why not aiohttp's ClientSession: on this hot path it cost about 220 µs of CPU per request, more
than the rest of the gateway together (docs/performance.md). The gateway only ever POSTs a body
it holds in memory to a container it started, and reads a bounded answer, so this client does
just that: one write per request, llhttp (via httptools) to parse the answer, idle connections
kept per container.
"""

from __future__ import annotations

import asyncio
import os
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import urlsplit

import httptools

_P = TypeVar("_P", bound=asyncio.Protocol)


class UpstreamError(Exception):
    """The container could not be reached, or the connection broke before a whole answer."""

    def __init__(self, why: str, *, connecting: bool) -> None:
        super().__init__(why)
        self.connecting = connecting


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]  # names lower-cased
    body: bytes | None  # None: longer than the limit (never buffered past it)
    length: int | None  # Content-Length, when the container sent one


class _Connection(asyncio.Protocol):
    """One keep-alive connection; one request at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.reused = False
        self._parser = httptools.HttpResponseParser(self)
        self._done: asyncio.Future[None] | None = None
        self._headers: dict[str, str] = {}
        self._header_name = b""
        self._body = bytearray()
        self._limit = 0
        self._over = False
        self._received = False
        self._complete = False
        self._keep_alive = False
        self._headers_done = False

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self._received = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:  # pragma: no cover - never asked for
            self._fail("the container switched protocols")
        except httptools.HttpParserError as e:
            self._fail(f"the container's answer is not valid HTTP ({e})")

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._done is not None and not self._done.done():
            if self._headers_done and not self._delimited():
                self._complete = True  # an answer delimited by the close ends with it
                self._done.set_result(None)
            elif not self._complete:
                why = f"the connection closed before a whole answer ({exc or 'EOF'})"
                self._done.set_exception(UpstreamError(why, connecting=False))

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        if name:
            self._header_name = name.lower()
            self._headers[self._header_name.decode("latin-1")] = value.decode("latin-1")
        else:  # a value continued across reads
            key = self._header_name.decode("latin-1")
            self._headers[key] += value.decode("latin-1")

    def on_headers_complete(self) -> None:
        self._headers_done = True
        self._keep_alive = bool(self._parser.should_keep_alive())  # valid only now

    def _delimited(self) -> bool:
        """Whether the answer says where it ends (otherwise the close ends it)."""
        return "content-length" in self._headers or "transfer-encoding" in self._headers

    def on_body(self, body: bytes) -> None:
        if self._over:
            return
        self._body += body
        if len(self._body) > self._limit:
            self._over = True
            self._body = bytearray()
            self._finish()  # answer now; the rest is never read (the connection is dropped)

    def on_message_complete(self) -> None:
        self._complete = True
        self._finish()

    def _finish(self) -> None:
        if self._done is not None and not self._done.done():
            self._done.set_result(None)

    def _fail(self, why: str) -> None:
        if self._done is not None and not self._done.done():
            self._done.set_exception(UpstreamError(why, connecting=False))
        self.close()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    async def exchange(self, request: bytes, limit: int) -> Answer:
        assert self.transport is not None
        self._done = asyncio.get_running_loop().create_future()
        self._headers = {}
        self._body = bytearray()
        self._limit = limit
        self._over = self._received = self._complete = self._keep_alive = False
        self._headers_done = False
        self.transport.write(request)
        try:
            await self._done
        finally:
            self._done = None
        length = self._headers.get("content-length")
        return Answer(
            status=self._parser.get_status_code(),
            headers=self._headers,
            body=None if self._over else bytes(self._body),
            length=int(length) if length is not None and length.isdigit() else None,
        )

    def reusable(self) -> bool:
        return not self.closed and self._complete and not self._over and self._keep_alive


class UpstreamPool:
    """Keep-alive connections to one container (HTTP/1.1; bodies always sent with a length)."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme != "http" or parts.hostname is None:
            raise ValueError(f"upstream URL {url!r}: allowed is http://HOST:PORT[/PATH]")
        self.url = f"{parts.scheme}://{parts.netloc}"
        self.host = parts.hostname
        self.port = parts.port or 80
        self.path = (parts.path or "/").encode()
        host = f"[{self.host}]" if ":" in self.host else self.host
        self._host_header = f"{host}:{self.port}".encode()
        self._idle: deque[_Connection] = deque()
        self._closed = False

    def _request(self, method: str, path: bytes, body: bytes, headers: dict[str, str]) -> bytes:
        head = [
            method.encode(),
            b" ",
            path,
            b" HTTP/1.1\r\nHost: ",
            self._host_header,
            b"\r\nContent-Length: ",
            str(len(body)).encode(),
            b"\r\n",
        ]
        for name, value in headers.items():
            head += [name.encode("latin-1"), b": ", value.encode("latin-1"), b"\r\n"]
        head += [b"\r\n", body]
        return b"".join(head)

    async def _connect(self, factory: Callable[[], _P] = _Connection) -> _P:  # type: ignore[assignment]
        loop = asyncio.get_running_loop()
        try:
            _, conn = await loop.create_connection(factory, self.host, self.port)
        except OSError as e:
            why = os.strerror(e.errno) if e.errno else str(e)
            raise UpstreamError(
                f"connecting to {self.url} failed ({why})", connecting=True
            ) from None
        return conn

    async def post(self, body: bytes, headers: dict[str, str], limit: int) -> Answer:
        """POST `body` to the pool's path; header values must be latin-1 (HTTP's own rule)."""
        return await self.send("POST", self.path, body, headers, limit)

    async def send(
        self, method: str, path: bytes, body: bytes, headers: dict[str, str], limit: int
    ) -> Answer:
        """One request on a kept-alive connection (or a new one). Cancel-safe."""
        request = self._request(method, path, body, headers)
        while self._idle:
            conn = self._idle.pop()
            if conn.closed:
                continue
            try:
                return await self._use(conn, request, limit)
            except UpstreamError:
                # A kept-alive connection the container closed as we wrote: nothing of the
                # request was read, so it is safe to send it once more on a new connection.
                if conn._received:
                    raise
        return await self._use(await self._connect(), request, limit)

    async def _use(self, conn: _Connection, request: bytes, limit: int) -> Answer:
        try:
            answer = await conn.exchange(request, limit)
        except BaseException:
            conn.close()  # cancelled (timeout) or broken: its state is unknown
            raise
        if conn.reusable() and not self._closed:
            self._idle.append(conn)
        else:
            conn.close()
        return answer

    async def stream(self, body: bytes, headers: dict[str, str], limit: int) -> Streamed:
        """POST `body` and return once the answer's headers are in; its body follows as parts.

        A connection of its own (a stream may last long; the kept-alive ones stay free for
        plain requests), closed when the stream ends. Cancel-safe.
        """
        conn = await self._connect(_StreamConnection)
        try:
            conn.start(self._request("POST", self.path, body, headers), limit)
            await conn.headers_in
        except BaseException:
            conn.close()
            raise
        return Streamed(conn)

    def close(self) -> None:
        """Close the idle connections; those in use close when their request ends."""
        self._closed = True
        while self._idle:
            self._idle.pop().close()


# --- streamed answers (InvokeEndpointWithResponseStream) ---------------------------------------

_END = object()
_HIGH_WATER = 32  # parts queued before the container's connection stops being read
_LOW_WATER = 8


class _StreamConnection(asyncio.Protocol):
    """One request whose answer is handed on part by part: each HTTP chunk whole, as sent.

    A chunk is never cut or joined with the next; an answer with a Content-Length (or delimited
    by the close) is one part. Reading pauses while the consumer is behind.
    """

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        loop = asyncio.get_running_loop()
        self.headers_in: asyncio.Future[None] = loop.create_future()
        self.headers: dict[str, str] = {}
        self.status = 0
        self._parser = httptools.HttpResponseParser(self)
        self._header_name = b""
        self._parts: asyncio.Queue[bytes | object | UpstreamError] = asyncio.Queue()
        self._body = bytearray()
        self._chunked = False
        self._limit = 0
        self._complete = False
        self._failed = False
        self._paused = False

    def start(self, request: bytes, limit: int) -> None:
        assert self.transport is not None
        self._limit = limit
        self.transport.write(request)

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as e:
            self._fail(f"the container's answer is not valid HTTP ({e})")

    def connection_lost(self, exc: Exception | None) -> None:
        if self._complete or self._failed:
            return
        delimited = "content-length" in self.headers or "transfer-encoding" in self.headers
        if self.headers_in.done() and not delimited:
            self.on_message_complete()  # an answer delimited by the close ends with it
            return
        self._fail(f"the connection closed before a whole answer ({exc or 'EOF'})")

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        if name:
            self._header_name = name.lower()
            self.headers[self._header_name.decode("latin-1")] = value.decode("latin-1")
        else:  # a value continued across reads
            self.headers[self._header_name.decode("latin-1")] += value.decode("latin-1")

    def on_headers_complete(self) -> None:
        self.status = self._parser.get_status_code()
        self._chunked = "chunked" in self.headers.get("transfer-encoding", "").lower()
        if not self.headers_in.done():
            self.headers_in.set_result(None)

    def on_body(self, body: bytes) -> None:
        self._body += body
        if len(self._body) > self._limit:
            what = "one chunk" if self._chunked else "the answer"
            self._fail(f"{what} is longer than the {self._limit}-byte limit")

    def on_chunk_complete(self) -> None:
        if self._body:
            self._put(bytes(self._body))
            self._body = bytearray()

    def on_message_complete(self) -> None:
        if self._body:
            self._put(bytes(self._body))
            self._body = bytearray()
        self._complete = True
        self._parts.put_nowait(_END)
        self.close()

    def _put(self, part: bytes) -> None:
        self._parts.put_nowait(part)
        if not self._paused and self._parts.qsize() >= _HIGH_WATER and self.transport:
            self._paused = True
            self.transport.pause_reading()

    def _fail(self, why: str) -> None:
        if self._complete or self._failed:
            return
        self._failed = True
        error = UpstreamError(why, connecting=False)
        if not self.headers_in.done():
            self.headers_in.set_exception(error)
        else:
            self._parts.put_nowait(error)
        self.close()

    async def next_part(self) -> bytes | None:
        """The next part; None once the answer is whole. Raises UpstreamError if it broke."""
        item = await self._parts.get()
        if self._paused and self._parts.qsize() <= _LOW_WATER and self.transport:
            self._paused = False
            self.transport.resume_reading()
        if item is _END:
            return None
        if isinstance(item, UpstreamError):
            raise item
        assert isinstance(item, bytes)
        return item

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class Streamed:
    """A container's answer whose headers are in: status, headers, then `parts()`."""

    def __init__(self, conn: _StreamConnection) -> None:
        self._conn = conn
        self.status = conn.status
        self.headers = conn.headers  # names lower-cased

    async def next_part(self) -> bytes | None:
        """The next part as it arrived (one chunk); None once the answer is whole.

        Raises UpstreamError when the answer broke off. Cancel-safe.
        """
        return await self._conn.next_part()

    async def read(self, limit: int) -> bytes:
        """The rest of the body (an error answer), cut at `limit` bytes."""
        out = bytearray()
        while len(out) < limit and (part := await self._conn.next_part()) is not None:
            out += part
        self._conn.close()
        return bytes(out[:limit])

    def close(self) -> None:
        self._conn.close()
