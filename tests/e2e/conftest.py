"""Start `sm-compose up` for real, as a user does, and hand tests an unmodified boto3 client.

`running_up(pipeline, *args)` is the one way a test runs `up`: started, ready, stopped at the end
of the block. `start_up` starts it alone, for a test about how `up` starts or fails.
`running_local(*args)` and `start_local` do the same for `sm-compose local`; `images` are two
small containers (`small_pipeline`) built for it (`built_images` builds any pipeline), and
`wait_status` waits for an endpoint it creates; `sagemaker_on_local` is `local` as the test's
SageMaker, with S3 and Application Auto Scaling on moto's server. `invoking_meanwhile` keeps
invoking while a test changes what serves (an update, a reload).
`init_project` and `users_pytest` are a user's `sm-compose init` and own `pytest` run, in which
the composer.testing plugin (not these fixtures) runs `up`.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil
import pytest

from composer.runners.contract import free_port
from composer.spec import load_pipeline
from tests.conftest import runtime_client_for, sagemaker_client_for

if TYPE_CHECKING:
    from tests.integration.aws_fixtures import MotoServer

REPO = Path(__file__).resolve().parents[2]
READY_TIMEOUT = 900  # the first run builds the containers' environments
#: The test container that misbehaves on request (its inference.py says how).
FAULTY = Path(__file__).parent / "containers" / "faulty"


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

    def client(self, timeout: float = 70, **credentials: str) -> Any:
        """An unmodified boto3 runtime client for its gateway (tests/conftest.py)."""
        return runtime_client_for(self.url, timeout=timeout, **credentials)

    def sagemaker(self) -> Any:
        """An unmodified boto3 `sagemaker` client for its control plane (tests/conftest.py)."""
        return sagemaker_client_for(self.url)

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


def write_pipeline(folder: Path, spec: str | dict[str, Any]) -> Path:
    """FOLDER/pipeline.yaml: the YAML text given, or a spec as a dict (written as JSON, which is
    YAML)."""
    path = folder / "pipeline.yaml"
    path.write_text(spec if isinstance(spec, str) else json.dumps(spec, indent=2) + "\n")
    return path


def faulty_pipeline(
    folder: Path, name: str, containers: dict[str, dict[str, Any]], mode: str | None = None
) -> Path:
    """A pipeline of FAULTY containers: hostname -> the spec fields it has besides `build`."""
    spec: dict[str, Any] = {"name": name, **({"mode": mode} if mode else {})}
    spec["containers"] = [
        {"hostname": hostname, "build": str(FAULTY), **fields}
        for hostname, fields in containers.items()
    ]
    return write_pipeline(folder, spec)


def start_up(pipeline: Path, *args: str, env: dict[str, str] | None = None) -> Up:
    state = pipeline.parent / ".composer"
    return _start(["up", str(pipeline)], args, env, state, load_pipeline(pipeline).name)


def start_local(*args: str, env: dict[str, str] | None = None) -> Up:
    """`sm-compose local ARGS...` (an empty local SageMaker); `state` is its working folder,
    known once it has printed the log path of a container."""
    return _start(["local"], args, env, Path(), "")


def _start(
    command: list[str], args: tuple[str, ...], env: dict[str, str] | None, state: Path, name: str
) -> Up:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "composer", *command, "--port", str(port), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "NO_COLOR": "1", **(env or {})},
        start_new_session=True,
    )
    up = Up(proc, port, state, name)

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            up.lines.append(line.rstrip("\n"))
            up._queue.put(line)
        up._queue.put(None)

    threading.Thread(target=pump, daemon=True).start()
    return up


@contextlib.contextmanager
def running_up(
    pipeline: Path, *args: str, env: dict[str, str] | None = None, ready: float = READY_TIMEOUT
) -> Iterator[Up]:
    """`sm-compose up PIPELINE ARGS...`, ready, for the block; stopped (SIGTERM) after it."""
    up = start_up(pipeline, *args, env=env)
    try:
        up.wait_for("ready at", ready)
        yield up
    finally:
        up.stop()


@contextlib.contextmanager
def running_local(*args: str, env: dict[str, str] | None = None, ready: float = 60) -> Iterator[Up]:
    """`sm-compose local ARGS...`, ready, for the block; stopped (SIGTERM) after it."""
    up = start_local(*args, env=env)
    try:
        up.wait_for("ready at", ready)
        yield up
    finally:
        up.stop()


@pytest.fixture
def sagemaker_on_local(moto: MotoServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[Up]:
    """A fresh `sm-compose local` that boto3's `sagemaker` clients (AWS_ENDPOINT_URL_SAGEMAKER)
    reach for the test; S3, STS and Application Auto Scaling stay on moto's server, emptied
    first. moto's SageMaker is never called: it runs nothing and has no UpdateEndpoint."""
    moto.reset()
    with running_local(ready=60) as local:
        monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER", local.url)
        yield local


@contextlib.contextmanager
def invoking_meanwhile(invoke: Callable[[], object]) -> Iterator[list[BaseException]]:
    """`invoke` called again and again in a thread for the block; what it raised, after."""
    failures: list[BaseException] = []
    stop = threading.Event()

    def keep_invoking() -> None:
        while not stop.is_set():
            try:
                invoke()
            except BaseException as e:  # every failure is the test's business
                failures.append(e)

    worker = threading.Thread(target=keep_invoking)
    worker.start()
    try:
        yield failures
    finally:
        stop.set()
        worker.join()


def kill_tree(up: Up) -> None:
    """SIGKILL to the process and all its descendants, as a crash would end them."""
    tree = psutil.Process(up.proc.pid)
    for proc in [tree, *tree.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()
    up.proc.wait(timeout=30)


def small_pipeline(folder: Path, name: str) -> Path:
    """FOLDER/pipeline.yaml: two small build: containers, Direct: `greeter` is
    containers/minimal, `echo` is FAULTY."""
    spec = {
        "name": name,
        "mode": "Direct",
        "containers": [
            {"hostname": "greeter", "build": str(REPO / "containers" / "minimal")},
            {"hostname": "echo", "build": str(FAULTY)},
        ],
    }
    return write_pipeline(folder, spec)


def built_images(pipeline: Path) -> dict[str, str]:
    """`sm-compose build PIPELINE`, as a user runs it: hostname -> the image reference it
    records (what the local SageMaker runs as processes, from the container's folder)."""
    subprocess.run(
        [sys.executable, "-m", "composer", "build", str(pipeline)], check=True, timeout=120
    )
    spec = load_pipeline(pipeline)
    requests = spec.state_dir / "build" / "sagemaker"
    document = json.loads((requests / "create_model.json").read_text())
    listed = document.get("Containers") or [document["PrimaryContainer"]]
    return {c.hostname: d["Image"] for c, d in zip(spec.containers, listed, strict=True)}


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """`built_images` of `small_pipeline`."""
    return built_images(small_pipeline(tmp_path_factory.mktemp("built"), "built"))


def wait_status(sm: Any, name: str, timeout: float = 120) -> dict[str, Any]:
    """The seed notebook's describe-until-done loop: DescribeEndpoint once the endpoint is no
    longer Creating or Updating."""
    deadline = time.monotonic() + timeout
    while True:
        described: dict[str, Any] = sm.describe_endpoint(EndpointName=name)
        if described["EndpointStatus"] not in ("Creating", "Updating"):
            return described
        assert time.monotonic() < deadline, described
        time.sleep(0.5)


def processes_under(path: Path) -> list[tuple[int, str]]:
    """Live processes whose command line mentions `path`: leftovers after a stop."""
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        cmdline = " ".join(proc.info["cmdline"] or ())
        if proc.info["status"] != psutil.STATUS_ZOMBIE and str(path) in cmdline:
            found.append((proc.pid, cmdline))
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
    with running_up(nlp_pipeline(tmp_path_factory.mktemp("nlp-direct"), "Direct")) as up:
        yield up


@pytest.fixture(scope="session")
def nlp_serial(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    with running_up(nlp_pipeline(tmp_path_factory.mktemp("nlp-serial"), "Serial")) as up:
        yield up


def init_project(folder: Path, template: str) -> Path:
    """`sm-compose init FOLDER --template TEMPLATE`, as a user runs it; returns FOLDER."""
    done = subprocess.run(
        [sys.executable, "-m", "composer", "init", str(folder), "--template", template],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return folder


def start_users_pytest(
    project: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    """A user's own `pytest` run in PROJECT, started: a process of its own, in which
    composer.testing's fixture starts and stops `up`. `-p composer.testing` loads the plugin
    because the editable install's entry points may be another checkout's; a wheel's
    `pytest11` entry point loads it alone (tests/e2e/test_wheel_install.py)."""
    argv = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rA"]
    return subprocess.Popen(
        [*argv, "-p", "composer.testing", *args],
        cwd=project,
        env={**os.environ, "NO_COLOR": "1", **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # As in a terminal, Ctrl-C interrupts it, even if this run inherited SIGINT ignored
        # (a shell's background job).
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def users_pytest(
    project: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`start_users_pytest`, run to its end."""
    proc = start_users_pytest(project, *args, env=env)
    try:
        stdout, stderr = proc.communicate(timeout=READY_TIMEOUT + 300)
    finally:
        proc.kill()
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
