#!/usr/bin/env python3
"""Benchmarks, side by side in one run: through the gateway vs straight to the container, and our
serving stack (nginx -> gunicorn -> falcon) vs the classic one (nginx -> gunicorn -> Flask).

Usage: .venv/bin/python scripts/bench.py [--seconds 5] [--no-write]
Loads go to loopback only and are bounded in time. The load generator is Apache Bench (`ab`,
Debian's apache2-utils, installed when missing). Results go into docs/benchmarks.md between
its markers, so a re-run refreshes the page.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CLASSIC = Path(__file__).resolve().parent / "bench" / "classic"
DOC = REPO / "docs" / "benchmarks.md"
BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"
CLASSIC_PINS = ["flask==3.1.3", "gunicorn==27.0.1", "textblob==0.20.1"]
TEXT = {"text": "The food was wonderful, but the service was painfully slow."}
APPLE = {"text": "Apple is looking at buying U.K. startup for $1 billion"}
CONCURRENCY = (1, 4, 16)
HOST_HEADER = "X-Amzn-SageMaker-Target-Container-Hostname"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"bench: {url} did not answer 200 in {timeout}s")


@dataclass
class Result:
    name: str
    concurrency: int
    rps: float
    p50: float
    p90: float
    p99: float
    failed: int


def ab(
    name: str, url: str, body: Path, concurrency: int, seconds: int, headers: dict[str, str]
) -> Result:
    argv = ["ab", "-q", "-k", "-t", str(seconds), "-n", "1000000", "-c", str(concurrency)]
    argv += ["-p", str(body), "-T", "application/json"]
    for key, value in headers.items():
        argv += ["-H", f"{key}: {value}"]
    out = subprocess.run([*argv, url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests per second:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    pct = {int(p): float(v) for p, v in re.findall(r"^\s+(\d+)%\s+(\d+)", out, re.M)}
    failed = int(re.search(r"Failed requests:\s+(\d+)", out).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx responses:\s+(\d+)", out)
    failed += int(non2xx.group(1)) if non2xx else 0
    return Result(name, concurrency, rps, pct[50], pct[90], pct[99], failed)


@contextmanager
def composer_up(log: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """`sm-compose up` of the Direct example: (gateway URL, hostname -> container URL)."""
    port = free_port()
    with log.open("w") as out:
        proc = subprocess.Popen(
            [
                str(REPO / ".venv/bin/sm-compose"),
                "up",
                "pipelines/nlp-direct.yaml",
                "--port",
                str(port),
            ],
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "NO_COLOR": "1"},
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 900
        while "ready at" not in log.read_text():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"bench: up failed:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        urls = dict(re.findall(r"^(\w+)\s+(http://127\.0\.0\.1:\d+)\s", log.read_text(), re.M))
        yield f"http://127.0.0.1:{port}", urls
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)


@contextmanager
def classic_stack(workers: int) -> Iterator[str]:
    """The classic bring-your-own layout, in its own cached environment."""
    env = Path.home() / ".cache" / "sagemaker-composer" / "bench" / "classic-venv"
    if not (env / ".ready").exists():
        subprocess.run([sys.executable, "-m", "venv", str(env)], check=True)
        subprocess.run([str(env / "bin/pip"), "install", "-q", *CLASSIC_PINS], check=True)
        (env / ".ready").touch()
    run = Path(tempfile.mkdtemp(prefix="classic-"))
    run.chmod(0o755)
    port = free_port()
    conf = (CLASSIC / "nginx.conf").read_text().replace("__RUN__", str(run))
    (run / "nginx.conf").write_text(conf.replace("__PORT__", str(port)))
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    devnull = subprocess.DEVNULL
    procs = [
        subprocess.Popen(
            [str(env / "bin/gunicorn"), "--workers", str(workers), "--timeout", "60",
             "--bind", f"unix:{run}/gunicorn.sock", "--chdir", str(CLASSIC),
             "--no-control-socket", "predictor:app"],
            stdout=devnull, stderr=devnull,
        ),
        subprocess.Popen(
            [nginx, "-p", str(run), "-c", str(run / "nginx.conf")], stdout=devnull, stderr=devnull
        ),
    ]  # fmt: skip
    try:
        wait_http(f"http://127.0.0.1:{port}/ping")
        yield f"http://127.0.0.1:{port}"
    finally:
        for p in procs:
            p.terminate()
            p.wait(timeout=30)
        shutil.rmtree(run, ignore_errors=True)


def post_status(url: str, body: bytes, headers: dict[str, str]) -> int:
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/json", **headers}
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as r:
            return int(r.status)
    except urllib.error.HTTPError as e:
        return int(e.code)


def overhead_us(gateway: str, container: str) -> float:
    text = urllib.request.urlopen(f"{gateway}/metrics", timeout=5).read().decode()

    def metric(name: str) -> float:
        pattern = rf'^OverheadLatency_{name}{{container="{container}"[^}}]*}} ([\d.e+]+)'
        found = re.search(pattern, text, re.M)
        return float(found.group(1)) if found else 0.0

    count = metric("count")
    return metric("sum") / count if count else 0.0


def table(results: list[Result]) -> str:
    rows = [
        "| stack | concurrency | requests/s | p50 ms | p90 ms | p99 ms | failed |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        rows.append(
            f"| {r.name} | {r.concurrency} | {r.rps:.0f} | {r.p50:.0f} | {r.p90:.0f} "
            f"| {r.p99:.0f} | {r.failed} |"
        )
    return "\n".join(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=5, help="Length of each load (s).")
    parser.add_argument("--no-write", action="store_true", help="Print only; leave the doc.")
    args = parser.parse_args()
    if shutil.which("ab") is None:
        subprocess.run(["apt-get", "install", "-y", "-qq", "apache2-utils"], check=True)
    work = Path(tempfile.mkdtemp(prefix="bench-"))
    small = work / "small.json"
    small.write_text(json.dumps(TEXT))
    apple = work / "apple.json"
    apple.write_text(json.dumps(APPLE))
    big = json.dumps({"text": "good " * (5_500_000 // 5)}).encode()
    results: list[Result] = []
    notes: list[str] = []
    started = time.monotonic()
    with composer_up(work / "up.log") as (gateway, urls):
        invocations = f"{gateway}/endpoints/nlp-direct/invocations"
        for c in CONCURRENCY:
            results.append(
                ab(
                    "textblob via gateway",
                    invocations,
                    small,
                    c,
                    args.seconds,
                    {HOST_HEADER: "textblob"},
                )
            )
            results.append(
                ab(
                    "textblob direct (nginx, gunicorn, falcon)",
                    f"{urls['textblob']}/invocations",
                    small,
                    c,
                    args.seconds,
                    {},
                )
            )
        for c in (1, 4):
            results.append(
                ab("spacy via gateway", invocations, apple, c, args.seconds, {HOST_HEADER: "spacy"})
            )
            results.append(
                ab("spacy direct", f"{urls['spacy']}/invocations", apple, c, args.seconds, {})
            )
        notes.append(
            "Gateway OverheadLatency (mean over every request above): "
            f"textblob {overhead_us(gateway, 'textblob'):.0f} µs, "
            f"spacy {overhead_us(gateway, 'spacy'):.0f} µs."
        )
        ours_big = post_status(f"{urls['textblob']}/invocations", big, {})
    with classic_stack(workers=os.cpu_count() or 1) as classic:
        for c in CONCURRENCY:
            results.append(
                ab(
                    "textblob classic (nginx, gunicorn, Flask)",
                    f"{classic}/invocations",
                    small,
                    c,
                    args.seconds,
                    {},
                )
            )
        classic_big = post_status(f"{classic}/invocations", big, {})
    notes.append(
        f"A {len(big):,}-byte request (within SageMaker's 6 MiB): ours answers {ours_big}, "
        f"the classic stack {classic_big}."
    )
    results.sort(key=lambda r: (r.name.split()[0], r.concurrency, r.name))
    body = "\n".join([
        f"Run {datetime.date.today()} on {os.cpu_count()} cores ({platform.machine()}, "
        f"Python {platform.python_version()}), "
        f"`{' '.join(['.venv/bin/python', 'scripts/bench.py', *sys.argv[1:]])}`, "
        f"{args.seconds} s per row, "
        f"load generator `ab -k` on the same machine; took {time.monotonic() - started:.0f} s.",
        "",
        table(results),
        "",
        *[f"- {n}" for n in notes],
    ])  # fmt: skip
    print(body)
    if not args.no_write:
        doc = DOC.read_text()
        start, end = doc.index(BEGIN) + len(BEGIN), doc.index(END)
        DOC.write_text(doc[:start] + "\n" + body + "\n" + doc[end:])
        print(f"bench: wrote {DOC.relative_to(REPO)}", file=sys.stderr)
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
