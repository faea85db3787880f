"""The gateway's container client against real sockets: keep-alive, limits, broken answers."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable

import pytest

from composer.gateway.upstream import UpstreamError, UpstreamPool

Serve = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    return await reader.readexactly(length)


async def _with_server(serve: Serve, body: Callable[[str], Awaitable[None]]) -> list[int]:
    connections: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        try:
            await serve(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        await body(f"http://127.0.0.1:{port}/invocations")
    finally:
        server.close()
    return connections


def _answer(status: int, body: bytes, extra: bytes = b"") -> bytes:
    return (
        f"HTTP/1.1 {status} X\r\nContent-Type: text/plain\r\n".encode()
        + f"Content-Length: {len(body)}\r\n".encode()
        + extra
        + b"\r\n"
        + body
    )


def test_keeps_one_connection_alive_across_requests() -> None:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            body = await _read_request(reader)
            writer.write(_answer(200, body.upper()))

    async def body(url: str) -> None:
        pool = UpstreamPool(url)
        for i in range(5):
            answer = await pool.post(f"x{i}".encode(), {"Content-Type": "text/plain"}, 100)
            assert (answer.status, answer.body) == (200, f"X{i}".encode())
            assert answer.headers["content-type"] == "text/plain"
        pool.close()

    assert len(asyncio.run(_with_server(serve, body))) == 1


def test_answer_over_the_limit_is_none_and_the_connection_dropped() -> None:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await _read_request(reader)
            writer.write(_answer(200, b"y" * 5000))

    async def body(url: str) -> None:
        pool = UpstreamPool(url)
        answer = await pool.post(b"x", {}, 1000)
        assert answer.body is None and answer.length == 5000
        answer = await pool.post(b"x", {}, 10_000)
        assert answer.body == b"y" * 5000

    assert len(asyncio.run(_with_server(serve, body))) == 2


def test_chunked_and_close_delimited_answers() -> None:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        body = await _read_request(reader)
        if body == b"chunked":
            writer.write(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
            )
        else:
            writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end")
            await writer.drain()
            writer.close()

    async def body(url: str) -> None:
        pool = UpstreamPool(url)
        assert (await pool.post(b"chunked", {}, 100)).body == b"abcde"
        assert (await pool.post(b"close", {}, 100)).body == b"until the end"

    asyncio.run(_with_server(serve, body))


def test_idle_connection_closed_by_the_container_is_replaced() -> None:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(_answer(200, b"ok"))  # keep-alive announced, then closed: nginx's timeout
        await writer.drain()

    async def body(url: str) -> None:
        pool = UpstreamPool(url)
        assert (await pool.post(b"1", {}, 100)).body == b"ok"
        await asyncio.sleep(0.2)
        assert (await pool.post(b"2", {}, 100)).body == b"ok"

    assert len(asyncio.run(_with_server(serve, body))) == 2


def test_answer_cut_short_is_an_error() -> None:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this")
        await writer.drain()

    async def body(url: str) -> None:
        with pytest.raises(UpstreamError) as caught:
            await UpstreamPool(url).post(b"x", {}, 1000)
        assert not caught.value.connecting
        assert "closed before a whole answer" in str(caught.value)

    asyncio.run(_with_server(serve, body))


def test_refused_connection_names_the_url() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: connecting is refused

        async def body() -> None:
            with pytest.raises(UpstreamError) as caught:
                await UpstreamPool(f"http://127.0.0.1:{port}/invocations").post(b"x", {}, 10)
            assert caught.value.connecting
            assert f"connecting to http://127.0.0.1:{port} failed" in str(caught.value)

        asyncio.run(body())


def test_cancelled_request_drops_its_connection() -> None:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            body = await _read_request(reader)
            if body == b"slow":
                await asyncio.sleep(5)
            writer.write(_answer(200, body))

    async def body(url: str) -> None:
        pool = UpstreamPool(url)
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.2):
                await pool.post(b"slow", {}, 100)
        assert (await pool.post(b"fast", {}, 100)).body == b"fast"

    assert len(asyncio.run(_with_server(serve, body))) == 2


def test_a_closed_pool_answers_its_last_requests_and_keeps_no_connection() -> None:
    """An endpoint replaced while serving closes its pools: requests in flight still end."""
    seen: list[bytes] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        body = await _read_request(reader)
        await asyncio.sleep(0.2)
        writer.write(_answer(200, body))
        await writer.drain()
        seen.append(await asyncio.wait_for(reader.read(), 5))  # b"": the pool closed it

    async def body(url: str) -> None:
        pool = UpstreamPool(url)
        call = asyncio.create_task(pool.post(b"x", {}, 100))
        await asyncio.sleep(0.1)
        pool.close()
        assert (await call).body == b"x"
        for _ in range(100):
            if seen:
                break
            await asyncio.sleep(0.05)

    asyncio.run(_with_server(serve, body))
    assert seen == [b""]


# --- streamed answers ----------------------------------------------------------------------------


def _streamed_parts(writes: list[bytes], limit: int = 100) -> list[bytes | str]:
    """The parts `UpstreamPool.stream` hands on for a container that sends `writes` (each
    flushed and left a moment apart); an UpstreamError ends the list as its text."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        for data in writes:
            writer.write(data)
            await writer.drain()
            await asyncio.sleep(0.02)

    got: list[bytes | str] = []

    async def body(url: str) -> None:
        streamed = await UpstreamPool(url).stream(b"{}", {}, limit)
        try:
            while (part := await streamed.next_part()) is not None:
                got.append(part)
        except UpstreamError as e:
            got.append(str(e))

    asyncio.run(_with_server(serve, body))
    return got


CHUNKED = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n"


def test_each_chunk_is_one_part_however_the_bytes_arrive() -> None:
    parts = _streamed_parts(
        [
            CHUNKED + b"5\r\nhel",  # a chunk split across reads stays whole
            b"lo\r\n3\r\none\r\n3\r\ntwo\r\n",  # two chunks in one read stay two
            b"4\r\nlast\r\n0\r\n\r\n",
        ]
    )
    assert parts == [b"hello", b"one", b"two", b"last"]


def test_a_plain_answer_is_one_part_and_a_broken_or_oversize_stream_an_error() -> None:
    assert _streamed_parts([_answer(200, b"whole")]) == [b"whole"]
    broken = _streamed_parts([CHUNKED + b"3\r\none\r\n5\r\nab"])
    assert broken[0] == b"one"
    assert "closed before a whole answer" in str(broken[1])
    oversize = _streamed_parts([CHUNKED + b"3\r\none\r\n" + b"%x\r\n" % 200 + b"x" * 200], 100)
    assert oversize[0] == b"one"
    assert "one chunk is longer than the 100-byte limit" in str(oversize[1])
