"""Raw HTTP/1.1 over a socket, for requests no well-behaved client library would send.

Hostile-input tests need CR/LF and non-ASCII bytes in header values, unnormalised paths and
bodies that trickle in; urllib, requests and boto3 all refuse or fix those up.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass
class Answer:
    status: int
    headers: dict[str, str]  # names lower-cased
    body: bytes

    def json(self) -> object:
        return json.loads(self.body)


def build(
    path: bytes,
    headers: Iterable[tuple[bytes, bytes]] = (),
    body: bytes | None = b"",
    *,
    method: bytes = b"POST",
    chunked: bool = False,
) -> bytes:
    """A request as bytes; Content-Length (or chunked framing) is added for the body."""
    lines = [method + b" " + path + b" HTTP/1.1", b"Host: 127.0.0.1"]
    lines += [name + b": " + value for name, value in headers]
    if body is not None and chunked:
        lines.append(b"Transfer-Encoding: chunked")
        framed = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body) if body else b"0\r\n\r\n"
        return b"\r\n".join(lines) + b"\r\n\r\n" + framed
    if body is not None:
        lines.append(b"Content-Length: %d" % len(body))
    return b"\r\n".join(lines) + b"\r\n\r\n" + (body or b"")


def read_answer(sock: socket.socket, method: str = "POST") -> Answer | None:
    """The next response on `sock`, or None when the server closed without one."""
    response = http.client.HTTPResponse(sock, method=method)
    try:
        response.begin()
        body = response.read()
    except (http.client.RemoteDisconnected, ConnectionResetError, http.client.IncompleteRead):
        return None
    finally:
        response.close()
    return Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, body)


def exchange(port: int, raw: bytes, *, timeout: float = 30, method: str = "POST") -> Answer | None:
    """Send `raw` on a fresh connection to 127.0.0.1:port and read one answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        # the server may answer early (e.g. oversize) and stop reading
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(raw)
        return read_answer(sock, method)


def closed_by_peer(sock: socket.socket, timeout: float) -> bool:
    """True once the peer closes `sock` (EOF or reset) within `timeout` seconds."""
    sock.settimeout(timeout)
    try:
        while sock.recv(65536):
            pass
    except TimeoutError:
        return False
    except OSError:
        return True
    return True
