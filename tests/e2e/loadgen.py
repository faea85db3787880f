"""Load for the reliability tests: many threads, each with its own unmodified boto3 client.

Also measures an `up` process tree (processes, threads, open file descriptors) with psutil, and
writes figures to $COMPOSER_LOAD_REPORT (JSON, one key per scenario) for the benchmark suite.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from botocore.exceptions import BotoCoreError, ClientError

from tests.conftest import alive

#: Duration of each load run: short in CI, 30 s in the benchmark command.
LOAD_SECONDS = float(os.environ.get("COMPOSER_LOAD_SECONDS", "5"))
#: Concurrent clients (each a thread with its own boto3 client, one request at a time).
CLIENTS = int(os.environ.get("COMPOSER_LOAD_CLIENTS", "64"))


def error_name(exc: BaseException) -> str:
    """ModelError, ValidationError, ... for a ClientError; the class name otherwise."""
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code") or type(exc).__name__)
    return type(exc).__name__


@dataclass
class Outcome:
    """One request: which client sent it, when it started and ended (monotonic), its error."""

    client: int
    started: float
    ended: float
    error: str | None = None
    detail: dict[str, Any] | None = None

    @property
    def seconds(self) -> float:
        return self.ended - self.started


@dataclass
class LoadResult:
    """Every request of a run, in the order they ended."""

    outcomes: list[Outcome]
    seconds: float
    clients: int

    @property
    def failures(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.error is not None]

    def percentile(self, q: float, ok_only: bool = True) -> float:
        times = sorted(o.seconds for o in self.outcomes if not ok_only or o.error is None)
        if not times:
            return float("nan")
        return times[min(len(times) - 1, int(q / 100 * len(times)))]

    def summary(self) -> dict[str, Any]:
        ok = len(self.outcomes) - len(self.failures)
        return {
            "clients": self.clients,
            "seconds": round(self.seconds, 2),
            "requests": len(self.outcomes),
            "failures": len(self.failures),
            "errors": dict(Counter(o.error for o in self.failures if o.error)),
            "requests_per_second": round(ok / self.seconds, 1) if self.seconds else 0.0,
            "p50_ms": round(self.percentile(50) * 1000, 1),
            "p99_ms": round(self.percentile(99) * 1000, 1),
            "max_ms": round(max((o.seconds for o in self.outcomes), default=0.0) * 1000, 1),
        }


Call = Callable[[Any, int], None]
"""Makes one request with the given client (and client index); raises on any failure."""


class Load:
    """`clients` threads calling `call` back to back until stopped (or `seconds` pass)."""

    def __init__(
        self,
        make_client: Callable[[], Any],
        call: Call,
        clients: int = CLIENTS,
        pause_after_error: float = 0.05,
    ):
        # boto3's default session is not safe to create clients from in many threads at once
        self.clients = [make_client() for _ in range(clients)]
        self.call = call
        # a client that failed waits a little before its next request, as a retrying client
        # would: a dead container's instant errors would otherwise spin the machine's CPUs
        self.pause_after_error = pause_after_error
        self.outcomes: list[Outcome] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._started = 0.0
        self._ended = 0.0

    def _run(self, index: int, deadline: float, barrier: threading.Barrier) -> None:
        client = self.clients[index]
        # all first requests leave together: the run reaches its full concurrency at once
        barrier.wait(timeout=60)
        while not self._stop.is_set() and time.monotonic() < deadline:
            started = time.monotonic()
            error: str | None = None
            detail: dict[str, Any] | None = None
            try:
                self.call(client, index)
            except ClientError as exc:
                error, detail = error_name(exc), dict(exc.response)
            except (BotoCoreError, AssertionError, ValueError, OSError) as exc:
                error, detail = error_name(exc), {"message": str(exc)}
            outcome = Outcome(index, started, time.monotonic(), error, detail)
            with self._lock:
                self.outcomes.append(outcome)
            if error is not None:
                self._stop.wait(self.pause_after_error)

    def start(self, seconds: float = 3600) -> Load:
        self._started = time.monotonic()
        deadline = self._started + seconds
        barrier = threading.Barrier(len(self.clients))
        self._threads = [
            threading.Thread(target=self._run, args=(i, deadline, barrier), daemon=True)
            for i in range(len(self.clients))
        ]
        for t in self._threads:
            t.start()
        return self

    def stop(self, timeout: float = 120) -> LoadResult:
        """Stop starting requests; wait (bounded) for those in flight; every one is counted."""
        self._stop.set()
        return self.join(timeout)

    def join(self, timeout: float = 120) -> LoadResult:
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
        hung = [t for t in self._threads if t.is_alive()]
        assert not hung, f"{len(hung)} clients still waiting for an answer after {timeout}s"
        self._ended = time.monotonic()
        return LoadResult(list(self.outcomes), self._ended - self._started, len(self.clients))

    def run(self, seconds: float) -> LoadResult:
        return self.start(seconds).join(seconds + 120)

    def since(self, moment: float) -> list[Outcome]:
        with self._lock:
            return [o for o in self.outcomes if o.started >= moment]


@dataclass
class TreeUsage:
    """What a process tree holds: processes, threads and open file descriptors."""

    processes: int
    threads: int
    fds: int
    by_process: dict[str, tuple[int, int]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, int]:
        return {"processes": self.processes, "threads": self.threads, "fds": self.fds}


def tree(pid: int) -> list[psutil.Process]:
    """`pid` and all its live descendants."""
    root = psutil.Process(pid)
    return alive([root, *root.children(recursive=True)])


def usage(pid: int) -> TreeUsage:
    processes = threads = fds = 0
    by_process: dict[str, tuple[int, int]] = {}
    for proc in tree(pid):
        try:
            with proc.oneshot():
                n_threads, n_fds = proc.num_threads(), proc.num_fds()
                cmd = " ".join(proc.cmdline())[:80]
        except psutil.NoSuchProcess:
            continue  # ended while we looked
        processes += 1
        threads += n_threads
        fds += n_fds
        by_process[f"{proc.pid} {cmd}"] = (n_threads, n_fds)
    return TreeUsage(processes, threads, fds, by_process)


def report(scenario: str, figures: dict[str, Any]) -> None:
    """Print the figures; also merge them into $COMPOSER_LOAD_REPORT when it is set."""
    print(f"\n{scenario}: {json.dumps(figures, sort_keys=True)}")
    path = os.environ.get("COMPOSER_LOAD_REPORT")
    if not path:
        return
    target = Path(path)
    existing: dict[str, Any] = {}
    if target.is_file():
        try:
            existing = json.loads(target.read_text())
        except ValueError:
            existing = {}
    existing[scenario] = figures
    target.write_text(json.dumps(existing, indent=2, sort_keys=True) + "\n")
