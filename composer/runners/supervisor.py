"""Container processes: started in their own process group, logged, pinged, restarted.

Each container runs as one child (the `serve` script, or an engine's `run`) in its own session.
When it dies, everything left in that session is killed, as the kernel kills a container's
processes when its PID 1 dies: nginx and gunicorn never outlive it, even after a kill -9.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Literal

import aiohttp

from ..errors import ComposerError

PING_TIMEOUT = 2.0
PING_INTERVAL = 0.5
DEFAULT_STARTUP_WINDOW = 480.0  # SageMaker's 8 minutes
STOP_TIMEOUT = 30.0
MAX_BACKOFF = 30.0
_CHUNK = 1 << 16
_LINE_LIMIT = 1 << 20
_COLOURS = ("cyan", "magenta", "green", "yellow", "blue", "red")

State = Literal["starting", "up", "down", "stopped"]


class StartupError(ComposerError):
    """A container did not pass /ping in its startup window, or exited while starting."""


class LogSink:
    """Prefixes each container's lines with its hostname (coloured on a terminal), after its
    `scope` (which endpoint, variant and instance, in the local SageMaker)."""

    def __init__(self, width: int, stream: IO[str] | None = None, scope: str = "") -> None:
        self.width = width
        self._scope = scope
        self._prefixes: dict[tuple[str, int], str] = {}
        self.stream = stream or sys.stdout
        self.colour = self.stream.isatty() and not os.environ.get("NO_COLOR")

    @property
    def scope(self) -> str:
        return self._scope

    @scope.setter
    def scope(self, scope: str) -> None:
        """A new scope for the lines from now on (a variant gained or lost copies)."""
        self._scope = scope
        self._prefixes = {}

    def prefix(self, hostname: str, index: int) -> str:
        found = self._prefixes.get((hostname, index))
        if found is not None:
            return found
        text = f"{self._scope}{hostname:<{self.width}} |"
        if self.colour:
            import click

            text = click.style(text, fg=_COLOURS[index % len(_COLOURS)])
        self._prefixes[(hostname, index)] = text
        return text

    def lines(self, prefix: str, texts: list[str]) -> None:
        self.stream.write("".join(f"{prefix} {text}\n" for text in texts))
        self.stream.flush()


_PING_REQUEST = '"GET /ping HTTP/'


class LogTail:
    """A container's last output lines, without those our own /ping calls cause.

    nginx logs every ping, and while the model loads an upstream error for each too: after a
    long startup window they would be all a startup failure could show.
    """

    def __init__(self, size: int = 40) -> None:
        self.lines: deque[str] = deque(maxlen=size)
        self.pings = 0

    def append(self, text: str) -> None:
        if _PING_REQUEST in text:
            self.pings += 1
        else:
            self.lines.append(text)

    def extend(self, texts: Iterable[str]) -> None:
        for text in texts:
            self.append(text)


@dataclass
class ManagedContainer:
    """One supervised container: how to start it, where it listens, where it logs."""

    hostname: str
    index: int
    argv: Sequence[str]
    env: dict[str, str]
    url: str
    log_path: Path
    sink: LogSink
    #: Seconds each start (the first and every restart) has to pass /ping.
    startup_window: float = DEFAULT_STARTUP_WINDOW
    cwd: Path | None = None
    stop_argv: Sequence[str] | None = None
    state: State = "starting"
    restarts: int = 0
    proc: asyncio.subprocess.Process | None = None
    _tail: LogTail = field(default_factory=LogTail)
    _pumps: list[asyncio.Task[None]] = field(default_factory=list)
    _stopping: bool = False

    def is_up(self) -> bool:
        return self.state == "up" and self.proc is not None and self.proc.returncode is None

    def tail(self, count: int = 20) -> list[str]:
        return list(self._tail.lines)[-count:]

    async def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.state = "starting"
        # A plain pipe, not asyncio's PIPE: event loops may hand children a socket there
        # (uvloop does), and nginx cannot open /dev/stdout on a socket.
        read_fd, write_fd = os.pipe()
        try:
            self.proc = await asyncio.create_subprocess_exec(
                *self.argv,
                cwd=self.cwd,
                env=self.env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=write_fd,
                stderr=write_fd,
                start_new_session=True,
            )
        except BaseException:
            os.close(read_fd)
            raise
        finally:
            os.close(write_fd)
        reader = asyncio.StreamReader(limit=_LINE_LIMIT)
        loop = asyncio.get_running_loop()
        await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(read_fd, "rb", buffering=0)
        )
        self._pumps = [asyncio.create_task(self._pump(reader))]

    async def _pump(self, stream: asyncio.StreamReader) -> None:
        """Relay output in chunks: one read, one file write and one console write per chunk.

        Under load a container prints an access-log line per request; a read per line would
        cost the gateway's loop a wake-up per line.
        """
        partial = b""
        with self.log_path.open("ab") as log:
            while True:
                chunk = await stream.read(_CHUNK)
                if not chunk:
                    if partial:
                        self._relay(log, [partial])
                    return
                lines = (partial + chunk).split(b"\n")
                partial = lines.pop()
                if len(partial) > _LINE_LIMIT:  # a line without end: show it in pieces
                    lines.append(partial)
                    partial = b""
                if lines:
                    self._relay(log, lines)

    def _relay(self, log: IO[bytes], lines: list[bytes]) -> None:
        texts = [raw.decode("utf-8", "replace") for raw in lines]
        self._tail.extend(texts)
        log.write(b"".join(raw + b"\n" for raw in lines))
        log.flush()
        self.sink.lines(self.sink.prefix(self.hostname, self.index), texts)

    async def ping(self, session: aiohttp.ClientSession) -> bool:
        try:
            timeout = aiohttp.ClientTimeout(total=PING_TIMEOUT)
            async with session.get(f"{self.url}/ping", timeout=timeout) as response:
                await response.read()
                return response.status == 200
        except (aiohttp.ClientError, TimeoutError, OSError):
            return False

    async def wait_ready(self, session: aiohttp.ClientSession) -> None:
        """Ping until 200, as SageMaker does at CreateEndpoint; fail fast if the process dies."""
        window = self.startup_window
        deadline = time.monotonic() + window
        while True:
            if self.proc is None or self.proc.returncode is not None:
                code = self.proc.returncode if self.proc else None
                await self._drain()
                raise StartupError(self._startup_message(f"exited with status {code}"))
            if await self.ping(session):
                self.state = "up"
                return
            if time.monotonic() >= deadline:
                raise StartupError(
                    self._startup_message(f"did not pass the ping health check in {window:.0f}s")
                )
            await asyncio.sleep(PING_INTERVAL)

    def _startup_message(self, what: str) -> str:
        lines = "\n".join(f"  {t}" for t in self.tail(20)) or "  (no output)"
        pings = f", {self._tail.pings} about /ping left out" if self._tail.pings else ""
        return (
            f"container {self.hostname} {what} while starting. Last log lines "
            f"(all of them in {self.log_path}{pings}):\n{lines}"
        )

    async def _drain(self) -> None:
        if self._pumps:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.gather(*self._pumps), timeout=2)

    async def _exited(self) -> int:
        """The exit status, as soon as the process is gone.

        Not `proc.wait()`: asyncio wakes that only once every pipe is closed, and the children
        of a killed `serve` (nginx, gunicorn) still hold its stdout.
        """
        assert self.proc is not None
        while self.proc.returncode is None:
            await asyncio.sleep(0.1)
        return self.proc.returncode

    def _kill_leftovers(self) -> None:
        """SIGKILL its group and whatever else is left in its session.

        `serve` puts nginx and gunicorn in process groups of their own, so a group signal misses
        them; after a kill -9 of serve they would linger (gunicorn drains for up to 20 s) and keep
        its output pipe open, delaying the restart.
        """
        self._signal_group(signal.SIGKILL)
        if self.proc is not None:
            for pid in _session_members(self.proc.pid):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)

    def _signal_group(self, sig: signal.Signals) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, sig)

    async def supervise(
        self, session: aiohttp.ClientSession, on_event: Callable[[str], None]
    ) -> None:
        """Restart on death with backoff until stopped; the gateway sees `down` meanwhile."""
        backoff = 1.0
        while not self._stopping:
            assert self.proc is not None
            started = time.monotonic()
            code = await self._exited()
            if self._stopping:
                return
            self.state = "down"
            self._kill_leftovers()
            await self._drain()
            if time.monotonic() - started > 60:
                backoff = 1.0
            on_event(f"{self.hostname} exited with status {code}; restarting in {backoff:.0f}s")
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF)
            if self._stopping:
                return
            self.restarts += 1
            await self.start()
            try:
                await self.wait_ready(session)
                on_event(f"{self.hostname} is up again (restart {self.restarts})")
            except StartupError as exc:
                on_event(str(exc))
                if not self._stopping:  # judged failed, as a first start would be: start again
                    await self._terminate()

    async def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """SIGTERM to the group, then SIGKILL after `timeout`, as SageMaker stops containers."""
        self._stopping = True
        self.state = "stopped"
        await self._terminate(timeout)

    async def _terminate(self, timeout: float = STOP_TIMEOUT) -> None:
        if self.proc is None:
            return
        if self.proc.returncode is None:
            if self.stop_argv:
                stopper = await asyncio.create_subprocess_exec(
                    *self.stop_argv,
                    stdout=asyncio.subprocess.DEVNULL,
                    stderr=asyncio.subprocess.DEVNULL,
                )
                await stopper.wait()
                # the engine stopped the container; its `run` is exiting on its own
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._exited(), timeout=5)
            if self.proc.returncode is None:
                self._signal_group(signal.SIGTERM)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._exited(), timeout=timeout)
        self._kill_leftovers()
        await self._drain()


def pid_alive(pid: int) -> bool:
    """Whether a process of that id runs (one of another user's counts too)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _session_members(sid: int) -> list[int]:
    """Live processes of session `sid`, from /proc (none where there is no /proc)."""
    found: list[int] = []
    with contextlib.suppress(OSError):
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            try:
                with open(f"/proc/{name}/stat", "rb") as f:
                    stat = f.read()
            except OSError:
                continue
            # fields after the command (which may hold spaces): state ppid pgrp session ...
            fields = stat.rsplit(b")", 1)[1].split()
            if len(fields) > 3 and int(fields[3]) == sid:
                found.append(int(name))
    return found


async def gather_ready(
    containers: Sequence[ManagedContainer], session: aiohttp.ClientSession
) -> None:
    """Every container passes /ping in its startup window; the first failure is raised."""
    await asyncio.gather(*(c.wait_ready(session) for c in containers))
