"""The gateway's listening socket: plain invocations answered here, the rest by aiohttp.

Why: per request, aiohttp's server cost about 100 µs of CPU on this project's machines, an
asyncio protocol on httptools about 18 µs (docs/performance.md). Nearly all traffic is one
shape: `POST /endpoints/NAME/invocations` with a Content-Length within the payload limit. A
connection's requests of that shape are parsed, answered and kept alive here; the first request
of any other shape (other paths and methods, chunked or oversize bodies, `Expect`, a parser
error) hands the whole connection, with the bytes received so far, to aiohttp's own handler,
which then serves it exactly as before. Here as there, the endpoint's `Reply` is the answer
(written here as bytes, in one write) and connections.py sets the timeouts, ids and drain.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Callable, Coroutine, Mapping
from email.utils import formatdate
from http import HTTPStatus
from typing import Any

import httptools
from multidict import CIMultiDict, CIMultiDictProxy

from . import errors
from .connections import Connections, last_resort, new_request_id
from .reply import Reply

_PATH = re.compile(rb"\A/endpoints/([^/?#%]+)/invocations\Z")
_HEADER_END = b"\r\n\r\n"
_STATUS_LINES = {s.value: f"HTTP/1.1 {s.value} {s.phrase}\r\n".encode() for s in HTTPStatus}

#: (request id, endpoint name, headers, body) -> the InvokeEndpoint coroutine (registry.py).
Invoke = Callable[[str, str, Mapping[str, str], bytes], Coroutine[Any, Any, Reply]]


class _Handoff(Exception):
    """This request is not one the fast path serves: aiohttp takes the connection."""


class _Date:
    """The Date header, formatted once a second."""

    second = -1
    value = b""

    @classmethod
    def now(cls) -> bytes:
        second = int(time.time())
        if second != cls.second:
            cls.second = second
            cls.value = formatdate(second, usegmt=True).encode()
        return cls.value


class FastPath(asyncio.Protocol):
    """One client connection (HTTP/1.1)."""

    def __init__(
        self,
        invoke: Invoke,
        fallback: Callable[[], asyncio.Protocol],
        connections: Connections,
        limit: int,
    ) -> None:
        self._invoke = invoke
        self._fallback = fallback
        self._connections = connections
        self._limit = limit
        self._timeout = connections.timeout
        self._transport: asyncio.Transport | None = None
        self._buf = bytearray()
        self._parser: httptools.HttpRequestParser | None = None
        self._url = b""
        self._headers: CIMultiDict[str] = CIMultiDict()
        self._need = -1  # bytes of the whole request once its headers are parsed
        self._body_at = 0
        self._parsed = 0
        self._keep_alive = True
        self._deadline: float | None = None
        self._on_deadline: Callable[[], None] = self.close
        self._handed_off = False
        self._task: asyncio.Task[Reply] | None = None
        self.busy = False

    @property
    def pending(self) -> bool:
        """A request is being answered, or part of one has arrived: a stop waits for it."""
        return self.busy or bool(self._buf)

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._connections.add(self)
        self._arm(self._idle_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self._connections.fast.discard(self)
        self._disarm()
        self._transport = None

    def data_received(self, data: bytes) -> None:
        self._buf += data
        if not self.busy:
            self._advance(data)

    # parsing

    def _advance(self, data: bytes | None = None) -> None:
        """Parse what has arrived; dispatch a whole request; hand off anything else.

        `data`: the bytes just received, when they are all that is unparsed (saves a copy).
        """
        if self._need < 0:
            if self._parser is None:
                self._start_request()
            assert self._parser is not None
            if data is not None and len(self._buf) - self._parsed == len(data):
                chunk = data
            else:
                chunk = bytes(self._buf[self._parsed :])
            self._parsed = len(self._buf)
            try:
                self._parser.feed_data(chunk)
            except httptools.HttpParserError as e:
                # httptools wraps what a callback raised; _Accepted stops it once the headers
                # are in (the body is counted, not parsed)
                if not isinstance(e.__context__, _Accepted):
                    self._hand_off()
                    return
            if self._need < 0:
                return
        if len(self._buf) < self._need:
            return
        self._dispatch()

    def _start_request(self) -> None:
        self._parser = httptools.HttpRequestParser(self)
        self._url = b""
        self._headers = CIMultiDict()
        self._need = -1
        self._body_at = 0
        self._parsed = 0
        self._arm(self._slow_request)

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.add(name.decode("latin-1"), value.decode("latin-1"))

    def on_headers_complete(self) -> None:
        parser = self._parser
        assert parser is not None
        h = self._headers
        if (
            parser.get_method() != b"POST"
            or parser.get_http_version() != "1.1"
            or _PATH.match(self._url) is None
            or "Transfer-Encoding" in h
            or "Expect" in h
            or len(h.getall("Content-Length", ())) != 1
        ):
            raise _Handoff
        length = h["Content-Length"]
        end = self._buf.find(_HEADER_END)
        if not length.isdigit() or int(length) > self._limit or end < 0:
            raise _Handoff
        self._keep_alive = bool(parser.should_keep_alive())
        self._need = end + len(_HEADER_END) + int(length)
        self._body_at = end + len(_HEADER_END)
        raise _Accepted

    def _hand_off(self) -> None:
        """aiohttp serves this connection from now on, from this request's first byte."""
        transport = self._transport
        if transport is None or self._handed_off:
            return
        self._handed_off = True
        self._disarm()
        self._connections.fast.discard(self)  # the drain finds it among aiohttp's now
        protocol = self._fallback()
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
        if self._buf:
            protocol.data_received(bytes(self._buf))
        self._buf = bytearray()

    # answering

    def _dispatch(self) -> None:
        self._disarm()
        self.busy = True
        body = bytes(self._buf[self._body_at : self._need])
        rest = self._buf[self._need :]
        self._buf = bytearray(rest)
        match = _PATH.match(self._url)
        assert match is not None
        name = match.group(1).decode("latin-1")
        request_id = new_request_id()
        headers = CIMultiDictProxy(self._headers)
        self._parser = None
        self._need = -1
        self._task = task = asyncio.get_running_loop().create_task(
            self._invoke(request_id, name, headers, body)
        )
        task.add_done_callback(self._answered)

    def _answered(self, task: asyncio.Task[Reply]) -> None:
        self.busy = False
        self._task = None
        if task.cancelled():
            self.close()
            return
        exc = task.exception()  # the endpoint answers every failure itself: a bug guard
        reply = task.result() if exc is None else last_resort(new_request_id(), exc)
        closing = self._connections.closing or not self._keep_alive or reply.close
        self._write(reply, closing)
        if closing:
            self.close()
            return
        self._arm(self._idle_timeout)
        if self._buf:
            self._advance()

    def _write(self, reply: Reply, closing: bool) -> None:
        """The reply as HTTP/1.1, in one write."""
        if self._transport is None:
            return
        status = reply.status
        body = reply.body
        lines = "".join(f"{name}: {value}\r\n" for name, value in reply.headers.items())
        head = [
            _STATUS_LINES.get(status) or f"HTTP/1.1 {status} Unknown\r\n".encode(),
            lines.encode("latin-1"),
            b"Content-Length: ",
            str(len(body)).encode(),
            b"\r\nDate: ",
            _Date.now(),
            b"\r\nConnection: close\r\n\r\n" if closing else b"\r\n\r\n",
            body,
        ]
        self._transport.write(b"".join(head))

    # timers

    def _arm(self, callback: Callable[[], None]) -> None:
        self._deadline = asyncio.get_running_loop().time() + self._timeout
        self._on_deadline = callback

    def _disarm(self) -> None:
        self._deadline = None

    def check_deadline(self, now: float) -> None:
        if self._deadline is not None and now >= self._deadline:
            self._deadline = None
            self._on_deadline()

    def _idle_timeout(self) -> None:
        if not self.busy and not self._buf:
            self.close()
        else:
            self._slow_request()

    def _slow_request(self) -> None:
        """Headers or body still incomplete after the client timeout (slowloris): cut off."""
        if self.busy or self._transport is None:
            return
        got = max(0, len(self._buf) - self._body_at) if self._need >= 0 else 0
        declared = self._need - self._body_at if self._need >= 0 else None
        if self._need >= 0:
            request_id = new_request_id()
            slow = errors.slow_request(request_id, self._timeout, got, declared)
            self._write(slow.to_reply(request_id), closing=True)
        self.close()

    def close(self) -> None:
        self._disarm()
        if self._transport is not None and not self._handed_off:
            with contextlib.suppress(Exception):
                self._transport.close()

    def abort(self) -> None:
        """The drain ended: a request still unanswered is cancelled, the connection closed."""
        if self._task is not None:
            self._task.cancel()
        self.close()


class _Accepted(Exception):
    """Headers parsed and accepted: the body is counted, not parsed."""
