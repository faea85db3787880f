"""What every benchmark needs: wrk loads, `up` and `serve` started for real, CPU and memory.

Everything listens on loopback and every load is bounded in time.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from composer.runners.contract import free_port

REPO = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
LUA = HERE / "post.lua"
VENV_BIN = REPO / ".venv" / "bin"
TARGET = "X-Amzn-SageMaker-Target-Container-Hostname"


@dataclass
class Load:
    """One wrk load (latencies in microseconds) and, if asked, the CPU a process spent on it."""

    label: str
    concurrency: int
    requests: int
    seconds: float
    p50: int
    p90: int
    p99: int
    errors: int
    cpu_us: dict[str, float] = field(default_factory=dict)  # process label -> µs per request

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def ensure_wrk() -> None:
    if shutil.which("wrk") is None:
        print("bench: installing wrk", file=sys.stderr)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        sudo = [] if os.geteuid() == 0 else ["sudo"]
        subprocess.run([*sudo, "apt-get", "install", "-y", "-qq", "wrk"], check=True, env=env)


def wait_ping(url: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/ping", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"bench: {url}/ping did not answer 200 in {timeout:.0f}s")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process (not its children)."""
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def wrk(
    label: str,
    url: str,
    body: Path,
    concurrency: int,
    seconds: float,
    headers: dict[str, str] | None = None,
    watch: dict[str, int] | None = None,
) -> Load:
    """One bounded wrk run (one thread, which leaves the most CPU to the servers)."""
    argv = ["wrk", "-t1", f"-c{concurrency}", f"-d{seconds:g}s", "--timeout", "10s"]
    argv += ["-s", str(LUA), url, "--", str(body), "application/json"]
    argv += [f"{k}: {v}" for k, v in (headers or {}).items()]
    before = {name: cpu_seconds(pid) for name, pid in (watch or {}).items()}
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    found = re.search(r"^WRK_JSON (\{.*\})$", out, re.M)
    if found is None:
        raise SystemExit(f"bench: wrk printed no summary:\n{out}")
    r = json.loads(found.group(1))
    load = Load(
        label=label,
        concurrency=concurrency,
        requests=int(r["requests"]),
        seconds=r["duration_us"] / 1e6,
        p50=int(r["p50"]),
        p90=int(r["p90"]),
        p99=int(r["p99"]),
        errors=sum(int(r[k]) for k in ("connect", "read", "write", "status", "timeout")),
    )
    for name, pid in (watch or {}).items():
        load.cpu_us[name] = (cpu_seconds(pid) - before[name]) * 1e6 / max(load.requests, 1)
    print(
        f"bench: {label:<34} c{concurrency:<3} {load.rps:7.0f} req/s p50 {load.p50 / 1000:6.2f} "
        f"ms p99 {load.p99 / 1000:6.2f} ms errors {load.errors}",
        file=sys.stderr,
        flush=True,
    )
    return load


def best_of(probes: Sequence[Callable[[], Load]], rounds: int, key: str = "rps") -> list[Load]:
    """Each probe `rounds` times, interleaved; per probe the least disturbed round.

    Other work on the machine only slows a round down, so the best round is the one it disturbed
    least; interleaving spreads a disturbance over every probe alike. Best is the most
    requests/s, or the lowest p50 for latency probes (key="p50").
    """
    best: list[Load | None] = [None] * len(probes)
    for _ in range(rounds):
        for i, probe in enumerate(probes):
            load = probe()
            kept = best[i]
            better = (
                kept is None
                or (key == "rps" and load.rps > kept.rps)
                or (key == "p50" and load.p50 < kept.p50)
            )
            if better:
                best[i] = load
    return [b for b in best if b is not None]


def stop(proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    """SIGTERM to what we started, then SIGKILL to its process group if it lingers."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@dataclass
class UpRun:
    """A running `sm-compose up`: gateway URL, container URLs by hostname, pid, start time."""

    gateway: str
    containers: dict[str, str]
    pid: int
    ready_seconds: float


@contextmanager
def _serving(
    argv: list[str], cwd: Path, log: Path, env: dict[str, str] | None = None
) -> Iterator[tuple[int, float]]:
    """`sm-compose ...` until it prints its ready line, then until the block ends: pid, seconds
    from the start to the ready line."""
    started = time.monotonic()
    with log.open("w") as out:
        proc = subprocess.Popen(
            argv,
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "NO_COLOR": "1", **(env or {})},
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 900
        while " ready at " not in log.read_text(errors="replace"):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"bench: {argv[1]} failed:\n{log.read_text()[-3000:]}")
            time.sleep(0.05)
        yield proc.pid, time.monotonic() - started
    finally:
        stop(proc)


@contextmanager
def composer_up(pipeline: Path, log: Path, env: dict[str, str] | None = None) -> Iterator[UpRun]:
    """`sm-compose up PIPELINE` on a free port, until the block ends."""
    port = free_port()
    argv = [str(VENV_BIN / "sm-compose"), "up", str(pipeline), "--port", str(port)]
    with _serving(argv, pipeline.parent, log, env) as (pid, ready):
        text = log.read_text(errors="replace")
        urls = dict(re.findall(r"^(\S+)\s+(http://127\.0\.0\.1:\d+)\s+\(log ", text, re.M))
        yield UpRun(f"http://127.0.0.1:{port}", urls, pid, ready)


@contextmanager
def composer_local(log: Path) -> Iterator[tuple[str, int]]:
    """`sm-compose local` (an empty local SageMaker) on a free port, until the block ends: its
    URL and pid."""
    port = free_port()
    argv = [str(VENV_BIN / "sm-compose"), "local", "--port", str(port)]
    with _serving(argv, log.parent, log) as (pid, _):
        yield f"http://127.0.0.1:{port}", pid


def children(pid: int) -> list[int]:
    """Every descendant of `pid` (a snapshot)."""
    return [p.pid for p in psutil.Process(pid).children(recursive=True)]


def memory_kb(pid: int) -> dict[str, int]:
    """Rss, Pss and private (Private_Clean + Private_Dirty: psutil's USS) of one process, in kB."""
    try:
        info = psutil.Process(pid).memory_full_info()
    except psutil.Error:
        return {"Rss": 0, "Pss": 0, "Private": 0}
    return {"Rss": info.rss // 1024, "Pss": info.pss // 1024, "Private": info.uss // 1024}


def command_name(pid: int) -> str:
    try:
        return " ".join(psutil.Process(pid).cmdline())
    except psutil.Error:
        return ""


def post_status(url: str, body: bytes, headers: dict[str, str] | None = None) -> int:
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/json", **(headers or {})}
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as r:
            r.read()
            return int(r.status)
    except urllib.error.HTTPError as e:
        return int(e.code)


class _KeptAlive:
    """A blocking keep-alive HTTP/1.1 client for one URL: one write, then read to the length.

    As lean as a Python client gets (no http.client): by hand the client pays its cost once per
    container, through the gateway once per chain, so a heavier client would flatter the gateway.
    """

    def __init__(self, url: str, headers: dict[str, str] | None = None) -> None:
        rest = url.removeprefix("http://")
        hostport, _, path = rest.partition("/")
        host, _, port = hostport.partition(":")
        self.address = (host, int(port))
        self.sock = self._connect()
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        self.head = f"POST /{path} HTTP/1.1\r\nHost: {hostport}\r\n{extra}".encode()

    def _connect(self) -> socket.socket:
        sock = socket.create_connection(self.address, timeout=10)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def post(self, body: bytes, content_type: str) -> tuple[bytes, str]:
        self.sock.sendall(
            self.head
            + f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        buf = b""
        while b"\r\n\r\n" not in buf:
            buf += self._recv()
        head, _, got = buf.partition(b"\r\n\r\n")
        status = head.split(b" ", 2)[1]
        length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
        answer_type = re.search(rb"(?im)^content-type:\s*([^\r\n]+)", head)
        if status != b"200" or length is None or answer_type is None:
            raise SystemExit(f"bench: unexpected answer:\n{head.decode(errors='replace')}")
        need = int(length.group(1))
        while len(got) < need:
            got += self._recv()
        if re.search(rb"(?im)^connection:\s*close", head):  # nginx's keepalive_requests
            self.sock.close()
            self.sock = self._connect()
        return got, answer_type.group(1).decode()

    def _recv(self) -> bytes:
        data = self.sock.recv(65536)
        if not data:
            raise SystemExit("bench: the server closed a kept-alive connection")
        return data

    def close(self) -> None:
        self.sock.close()


def chains(named: dict[str, list[str]], body: bytes, seconds: float) -> list[Load]:
    """One client for `seconds`, taking turns: one pass of each chain, then the next round.

    A pass POSTs `body` to a chain's first URL and each answer to the next. With one URL (the
    gateway) the server does the chain; with several (the containers) the client does it, as a
    user would without a Serial endpoint. Taking turns pass by pass puts every disturbance of a
    shared machine on all chains alike, so their difference holds where their levels do not.
    """
    clients = {label: [_KeptAlive(u) for u in urls] for label, urls in named.items()}
    times: dict[str, list[int]] = {label: [] for label in named}
    try:
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            for label, chain in clients.items():
                t = time.perf_counter_ns()
                data, content_type = body, "application/json"
                for client in chain:
                    data, content_type = client.post(data, content_type)
                times[label].append(time.perf_counter_ns() - t)
    finally:
        for chain in clients.values():
            for client in chain:
                client.close()
    return [_sequential_load(label, taken, "passes") for label, taken in times.items()]


def _sequential_load(label: str, taken_ns: list[int], what: str) -> Load:
    """One client's calls, one at a time (`taken_ns` each), as a Load: percentiles in µs."""
    taken = sorted(taken_ns)
    p50, p90, p99 = (taken[min(len(taken) - 1, int(q * len(taken)))] // 1000
                     for q in (0.5, 0.9, 0.99))  # fmt: skip
    load = Load(label, 1, len(taken), sum(taken) / 1e9, p50, p90, p99, 0)
    print(
        f"bench: {label:<34} c1   {load.rps:7.0f} {what}/s p50 {load.p50 / 1000:6.2f} ms "
        f"p99 {load.p99 / 1000:6.2f} ms",
        file=sys.stderr,
        flush=True,
    )
    return load


def repeated(label: str, call: Callable[[], object], seconds: float) -> Load:
    """`call` over and over for `seconds`, one at a time (one client): its latencies."""
    taken: list[int] = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        t = time.perf_counter_ns()
        call()
        taken.append(time.perf_counter_ns() - t)
    return _sequential_load(label, taken, "calls")


def raw_posts(
    label: str, url: str, body: bytes, content_type: str, headers: dict[str, str], seconds: float
) -> Load:
    """`repeated` POSTs of `body` on one kept-alive socket, no HTTP library: the server's own
    time, as near as a Python client measures it."""
    client = _KeptAlive(url, headers)
    try:
        return repeated(label, lambda: client.post(body, content_type), seconds)
    finally:
        client.close()
