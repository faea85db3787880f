"""Start `sm-compose up` for real, as a user does, and hand tests an unmodified boto3 client."""

from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

from composer.spec import load_pipeline

REPO = Path(__file__).resolve().parents[2]
READY_TIMEOUT = 900  # the first run builds the containers' environments


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Up:
    """A running `sm-compose up` process and what it printed."""

    proc: subprocess.Popen[str]
    port: int
    state: Path
    name: str
    lines: list[str] = field(default_factory=list)
    _queue: queue.Queue[str | None] = field(default_factory=queue.Queue)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self, timeout: float = 70) -> object:
        return boto3.client(
            "sagemaker-runtime",
            endpoint_url=self.url,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            config=Config(retries={"max_attempts": 1}, read_timeout=timeout),
        )

    def wait_for(self, needle: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        for line in self.lines:
            if needle in line:
                return line
        while time.monotonic() < deadline:
            try:
                line = self._queue.get(timeout=0.5)
            except queue.Empty:
                if self.proc.poll() is not None:
                    break
                continue
            if line is None:
                break
            if needle in line:
                return line
        tail = "\n".join(self.lines[-40:])
        raise AssertionError(f"`up` did not print {needle!r} in {timeout}s; output:\n{tail}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 150) -> int:
        # A bound, not a measurement: SageMaker gives each container 30 s after SIGTERM (they
        # stop together) and serve's children a further grace, on a machine that may be busy.
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise


def write_pipeline(folder: Path, text: str) -> Path:
    path = folder / "pipeline.yaml"
    path.write_text(text)
    return path


def start_up(pipeline: Path, *args: str, env: dict[str, str] | None = None) -> Up:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "composer", "up", str(pipeline), "--port", str(port), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "NO_COLOR": "1", **(env or {})},
        start_new_session=True,
    )
    up = Up(proc, port, pipeline.parent / ".composer", load_pipeline(pipeline).name)

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            up.lines.append(line.rstrip("\n"))
            up._queue.put(line)
        up._queue.put(None)

    threading.Thread(target=pump, daemon=True).start()
    return up


def processes_under(path: Path) -> list[tuple[int, str]]:
    """Live processes whose command line mentions `path`: leftovers after a stop."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            status = (entry / "status").read_text()
        except OSError:
            continue
        if "State:\tZ" in status:
            continue
        if str(path) in cmdline:
            found.append((int(entry.name), cmdline))
    return found


def nlp_pipeline(folder: Path, mode: str) -> Path:
    """The shipped NLP example, written with absolute paths into a private folder."""
    text = f"""
name: nlp-{mode.lower()}
mode: {mode}
containers:
  - hostname: spacy
    build: {REPO / "containers" / "spacy"}
    model_data: {REPO / "artifacts" / "spacy-model.tar.gz"}
  - hostname: textblob
    build: {REPO / "containers" / "textblob"}
"""
    return write_pipeline(folder, text)


@pytest.fixture(scope="session")
def nlp_direct(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    folder = tmp_path_factory.mktemp("nlp-direct")
    up = start_up(nlp_pipeline(folder, "Direct"))
    try:
        up.wait_for("ready at", READY_TIMEOUT)
        yield up
    finally:
        up.stop()


@pytest.fixture(scope="session")
def nlp_serial(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    folder = tmp_path_factory.mktemp("nlp-serial")
    up = start_up(nlp_pipeline(folder, "Serial"))
    try:
        up.wait_for("ready at", READY_TIMEOUT)
        yield up
    finally:
        up.stop()
