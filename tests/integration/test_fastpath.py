"""The gateway's fast path on raw sockets: keep-alive, pipelining, fragments, hand-offs."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httptools
import pytest
from aiohttp import web

from composer.gateway import GatewayConfig, ThreadedGateway, Upstream

INVOKE = b"/endpoints/fast/invocations"


class _Container:
    """An aiohttp container answering the request body upper-cased, on its own loop.

    A body `sleep S` is answered after S seconds.
    """

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.url = ""

    async def _start(self) -> None:
        async def invocations(request: web.Request) -> web.Response:
            body = await request.read()
            if body.startswith(b"sleep "):
                await asyncio.sleep(float(body.split()[1]))
            return web.Response(body=body.upper(), content_type="text/plain")

        app = web.Application()
        app.router.add_post("/invocations", invocations)
        self.runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self.runner.addresses[0][1]}"

    def start(self) -> _Container:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)
        return self

    async def _stop(self) -> None:
        await self.runner.cleanup()
        sleeping = asyncio.all_tasks() - {asyncio.current_task()}  # answers nobody waits for
        for task in sleeping:
            task.cancel()
        await asyncio.gather(*sleeping, return_exceptions=True)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)


@contextlib.contextmanager
def _serving(**config: Any) -> Iterator[ThreadedGateway]:
    """A gateway (endpoint "fast") in front of a container of its own; both stopped after."""
    container = _Container().start()
    up = Upstream(hostname="c", url=container.url)
    gw = ThreadedGateway(GatewayConfig("fast", "Serial", (up,), **config)).start()
    try:
        yield gw
    finally:
        gw.stop()
        container.stop()


@pytest.fixture(scope="module")
def gateway() -> Iterator[ThreadedGateway]:
    with _serving(client_timeout=2.0) as gw:
        yield gw


@pytest.fixture
def own_gateway() -> Iterator[ThreadedGateway]:
    """A gateway a test may stop."""
    with _serving() as gw:
        yield gw


class _Answers:
    """Responses parsed off one socket, in order."""

    def __init__(self) -> None:
        self.done: list[tuple[int, dict[str, str], bytes]] = []
        self._headers: dict[str, str] = {}
        self._body = b""
        self.parser = httptools.HttpResponseParser(self)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers[name.decode().lower()] = value.decode()

    def on_body(self, body: bytes) -> None:
        self._body += body

    def on_message_complete(self) -> None:
        self.done.append((self.parser.get_status_code(), self._headers, self._body))
        self._headers, self._body = {}, b""


def _read(
    sock: socket.socket, count: int, timeout: float = 10
) -> list[tuple[int, dict[str, str], bytes]]:
    answers = _Answers()
    sock.settimeout(timeout)
    while len(answers.done) < count:
        data = sock.recv(65536)
        if not data:
            break
        answers.parser.feed_data(data)
    return answers.done


def _post(body: bytes, extra: bytes = b"", path: bytes = INVOKE, version: bytes = b"1.1") -> bytes:
    return (
        b"POST " + path + b" HTTP/" + version + b"\r\nHost: x\r\nContent-Type: text/plain\r\n"
        + extra + b"Content-Length: %d\r\n\r\n" % len(body) + body
    )  # fmt: skip


def _port(gw: ThreadedGateway) -> int:
    return int(gw.url.rsplit(":", 1)[1])


def test_many_requests_on_one_kept_alive_connection(gateway: ThreadedGateway) -> None:
    with socket.create_connection(("127.0.0.1", _port(gateway))) as sock:
        for i in range(20):
            sock.sendall(_post(b"hello %d" % i))
            [(status, headers, body)] = _read(sock, 1)
            assert (status, body) == (200, b"HELLO %d" % i)
            assert headers["x-amzn-invoked-production-variant"] == "AllTraffic"
            assert "connection" not in headers


def test_pipelined_requests_are_answered_in_order(gateway: ThreadedGateway) -> None:
    with socket.create_connection(("127.0.0.1", _port(gateway))) as sock:
        sock.sendall(_post(b"one") + _post(b"two") + _post(b"three"))
        answers = _read(sock, 3)
    assert [a[2] for a in answers] == [b"ONE", b"TWO", b"THREE"]


def test_a_request_in_fragments(gateway: ThreadedGateway) -> None:
    raw = _post(b"x" * 3000)
    with socket.create_connection(("127.0.0.1", _port(gateway))) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in range(0, len(raw), 7):
            sock.sendall(raw[i : i + 7])
            if i < 200:
                time.sleep(0.001)
        [(status, _, body)] = _read(sock, 1)
    assert (status, body) == (200, b"X" * 3000)


def test_other_requests_hand_the_connection_to_aiohttp(gateway: ThreadedGateway) -> None:
    with socket.create_connection(("127.0.0.1", _port(gateway))) as sock:
        sock.sendall(_post(b"fast first"))
        assert _read(sock, 1)[0][2] == b"FAST FIRST"
        sock.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n")
        [(status, headers, _)] = _read(sock, 1)
        assert status == 200 and "aiohttp" in headers.get("server", "")
        sock.sendall(_post(b"then aiohttp"))  # the connection stays with aiohttp
        assert _read(sock, 1)[0][2] == b"THEN AIOHTTP"


@pytest.mark.parametrize(
    "raw",
    [
        _post(b"old client", version=b"1.0"),
        _post(b"expects", extra=b"Expect: 100-continue\r\n"),
        b"POST /endpoints/fast/invocations HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        b"\r\n5\r\nchunk\r\n0\r\n\r\n",
    ],
    ids=["http-1.0", "expect", "chunked"],
)
def test_unusual_invocations_are_served_by_aiohttp(gateway: ThreadedGateway, raw: bytes) -> None:
    with socket.create_connection(("127.0.0.1", _port(gateway))) as sock:
        sock.sendall(raw)
        answers = _read(sock, 2 if b"Expect" in raw else 1)
    final = answers[-1]
    assert final[0] == 200
    assert final[2] in (b"OLD CLIENT", b"EXPECTS", b"CHUNK")


def test_connection_close_is_honoured(gateway: ThreadedGateway) -> None:
    with socket.create_connection(("127.0.0.1", _port(gateway))) as sock:
        sock.sendall(_post(b"bye", extra=b"Connection: close\r\n"))
        [(status, headers, body)] = _read(sock, 1)
        assert (status, body, headers["connection"]) == (200, b"BYE", "close")
        sock.settimeout(5)
        assert sock.recv(10) == b""


CHUNKED_HEAD = (
    b"POST /endpoints/fast/invocations HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
)


@pytest.mark.parametrize(
    ("raw", "got"),
    [
        (_post(b"0123456789")[:-5], b"got 5 of 10 bytes"),  # five bytes short, then nothing
        (CHUNKED_HEAD + b"5\r\nhello\r\n", b"got 5 bytes"),  # aiohttp's; no last chunk
    ],
    ids=["fast-path", "aiohttp"],
)
def test_a_slow_body_is_cut_off_with_an_error(
    gateway: ThreadedGateway, raw: bytes, got: bytes
) -> None:
    with socket.create_connection(("127.0.0.1", _port(gateway))) as sock:
        sock.sendall(raw)
        [(status, headers, body)] = _read(sock, 1, timeout=15)
    assert status == 400 and headers["x-amzn-errortype"] == "ValidationError"
    assert headers["connection"] == "close"
    message = json.loads(body)["Message"]
    assert got.decode() in message
    # one request id: the one the message names is the one botocore reports
    assert message.startswith(f"Request {headers['x-amzn-requestid']}: its body did not arrive")


def _stopping(gw: ThreadedGateway, grace: float = 30.0) -> threading.Thread:
    """`gw.stop(grace)` under way in a thread."""
    stopping = threading.Thread(target=gw.stop, args=(grace,))
    stopping.start()
    time.sleep(0.2)  # the listener is closed; kept-alive connections are still open
    return stopping


def _answered_during(stopping: threading.Thread, sock: socket.socket) -> None:
    """A request sent while the stop drains is answered with Connection: close; then it ends."""
    sock.sendall(_post(b"during"))
    [(status, headers, body)] = _read(sock, 1)
    assert (status, body, headers["connection"]) == (200, b"DURING", "close")
    sock.settimeout(5)
    assert sock.recv(10) == b""
    stopping.join(30)
    assert not stopping.is_alive()


def test_a_stop_answers_requests_on_kept_alive_connections_then_closes(
    own_gateway: ThreadedGateway,
) -> None:
    """A client may send on its pooled connection at the instant of the stop: it gets an answer."""
    port = _port(own_gateway)
    with (
        socket.create_connection(("127.0.0.1", port)) as idle,
        socket.create_connection(("127.0.0.1", port)) as silent,
    ):
        idle.sendall(_post(b"before"))
        assert _read(idle, 1)[0][2] == b"BEFORE"
        stopping = _stopping(own_gateway)
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
        _answered_during(stopping, idle)
        silent.settimeout(5)
        assert silent.recv(10) == b""  # never used: closed once the drain ended


def test_a_stop_answers_requests_on_connections_aiohttp_serves(
    own_gateway: ThreadedGateway,
) -> None:
    """A connection handed to aiohttp lingers on stop as the fast path's do."""
    with socket.create_connection(("127.0.0.1", _port(own_gateway))) as sock:
        sock.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n")  # aiohttp takes it
        [(status, headers, _)] = _read(sock, 1)
        assert status == 200 and "aiohttp" in headers.get("server", "")
        _answered_during(_stopping(own_gateway), sock)


@pytest.mark.parametrize(
    "raw",
    [_post(b"sleep 8"), CHUNKED_HEAD + b"7\r\nsleep 8\r\n0\r\n\r\n"],
    ids=["fast-path", "aiohttp"],
)
def test_a_stop_ends_what_is_still_unanswered_after_its_grace(
    own_gateway: ThreadedGateway, raw: bytes
) -> None:
    """stop(grace) bounds the drain of both servers: a request still running is dropped."""
    with socket.create_connection(("127.0.0.1", _port(own_gateway))) as sock:
        sock.sendall(raw)
        time.sleep(0.3)  # at the container now, for 8 s
        started = time.monotonic()
        stopping = _stopping(own_gateway, grace=1.0)
        stopping.join(30)
        took = time.monotonic() - started
        sock.settimeout(5)
        assert sock.recv(10) == b""  # closed without an answer
    assert not stopping.is_alive()
    assert took < 5, f"the stop took {took:.1f} s with a grace of 1 s"
