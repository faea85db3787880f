"""How the gateway treats its callers' connections, whichever HTTP server holds them.

Both servers (fastpath.py, and aiohttp's behind app.py) take these from here:

- **client timeout**: a caller has `client_timeout` seconds to send a request's headers, and
  again that long for its body; idle kept-alive connections close after as long. The fast path
  runs one deadline sweep over its connections; aiohttp gets the same numbers
  (`Connections.server_options`), and the rest of a refused body is read and dropped for at
  most 10 s so that the caller reads the answer;
- **request ids**: `new_request_id`, one per request, in the answer's body and header alike;
- **the last-resort 500**: `last_resort`, for a failure no handler answered;
- **linger on stop**: `Connections.drain` keeps every connection, on either server, open while
  anything is in flight and for at least `LINGER_SECONDS`, answering with `Connection: close`,
  then closes them all; what is still running when the grace period ends is cancelled;
- a request the HTTP parser refuses is logged as one warning line (`server_log`).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import TYPE_CHECKING, Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from .errors import InternalFailure
from .reply import Reply

if TYPE_CHECKING:
    from .fastpath import FastPath

log = logging.getLogger("composer.gateway")

#: How long a stop keeps idle kept-alive connections open, answering with Connection: close.
LINGER_SECONDS = 1.0
#: How long the rest of a refused body is read and dropped (never past the client timeout).
_DROP_SECONDS = 10.0


def new_request_id() -> str:
    return str(uuid.uuid4())


def last_resort(request_id: str, exc: BaseException | None = None) -> Reply:
    """InternalFailure for an exception nothing else answered (called where it was caught).

    The traceback goes to the log; the caller gets the request id to find it, never the
    traceback itself.
    """
    log.error("gateway failure on request %s", request_id, exc_info=exc or True)
    return InternalFailure(
        f"The local gateway failed while handling request {request_id}; its log has the details."
    ).to_reply(request_id)


class Connections:
    """Every open connection of one gateway, on either server: timeouts and the drain on stop."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.fast: set[FastPath] = set()
        self.slow_in_flight = 0  # requests aiohttp's handlers are answering
        self.closing = False
        self._server: web.Server | None = None  # aiohttp's: it holds the handed-off connections
        self._every = min(1.0, timeout / 4)
        self._sweeper: asyncio.Task[None] | None = None

    def server_options(self) -> dict[str, Any]:
        """aiohttp's server settings for the same policy."""
        return {
            # keepalive_timeout also bounds how long a connection may take to send its
            # headers (aiohttp closes one still without a whole request then): slowloris
            "keepalive_timeout": self.timeout,
            "lingering_time": min(_DROP_SECONDS, self.timeout),
            "access_log": None,
            "logger": server_log,  # a malformed request: one line, not a traceback
        }

    def attach(self, server: web.Server) -> None:
        """aiohttp's server, which serves the connections the fast path hands off."""
        self._server = server

    def add(self, conn: FastPath) -> None:
        self.fast.add(conn)
        if self._sweeper is None:
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep())

    async def _sweep(self) -> None:
        """One timer for every fast-path connection: a request then only notes its deadline."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self._every)
            now = loop.time()
            for conn in list(self.fast):
                conn.check_deadline(now)

    def _open(self) -> bool:
        return bool(self.fast) or (self._server is not None and bool(self._server.connections))

    def _pending(self) -> bool:
        return self.slow_in_flight > 0 or any(c.pending for c in self.fast)

    async def drain(self, grace: float, linger: float = LINGER_SECONDS) -> None:
        """Answer what is in flight and what arrives on open connections, then close them all.

        An idle kept-alive connection is not closed at once: a client may be sending on it at
        this very moment and would see it drop unanswered (HTTP/1.1 cannot tell it apart from a
        request that was never sent). Until nothing is in flight and at least `linger` seconds
        have passed (at most `grace`), every answer carries `Connection: close`. What is still
        unanswered after `grace` seconds is cancelled.
        """
        self.closing = True
        loop = asyncio.get_running_loop()
        now = loop.time()
        deadline = now + grace
        quiet_from = now + min(linger, grace)
        while self._open() and now < deadline:
            if now >= quiet_from and not self._pending():
                break
            await asyncio.sleep(0.05)
            now = loop.time()
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for conn in list(self.fast):
            conn.abort()
        if self._server is not None:
            self._server.pre_shutdown()  # closes idle connections, the others once answered
            # aiohttp waits that long for its handlers, then cancels them (0 would mean forever)
            await self._server.shutdown(max(deadline - loop.time(), 0.001))


class _OneLineForMalformedRequests(logging.Filter):
    """aiohttp logs a traceback for every request its parser refuses (it answers 400 itself).

    That is the caller's mistake, not the gateway's: one warning line says it all.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError) and 400 <= (exc.code or 0) < 500:
            why = (exc.message or type(exc).__name__).strip().splitlines()[0]
            record.msg = f"{record.getMessage()}: refused with {exc.code}: {why}"
            record.args = None
            record.exc_info = None
            record.exc_text = None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


#: The logger the gateway's HTTP server reports connection-level problems to.
server_log = logging.getLogger("composer.gateway.http")
server_log.addFilter(_OneLineForMalformedRequests())
