"""A pytest plugin for users' own tests: their pipeline served by `sm-compose up`, or a deployed
endpoint, behind the same unmodified boto3 client.

Installed with the package and registered through the `pytest11` entry point, it offers the
module-scoped factory fixture `composer_up`:

    @pytest.fixture(scope="module")
    def endpoint(composer_up: UpFactory) -> Endpoint:
        return composer_up(Path(__file__).parent.parent / "pipeline.yaml")

Each call runs `sm-compose up PIPELINE` in a process of its own, waits until it is ready, and
returns an `Endpoint`; every `up` the module started is stopped after its last test, whether the
tests passed or failed. With COMPOSER_TEST_ENDPOINT=<endpoint name> set, nothing is started: the
client comes from boto3's standard chain (credentials, region, AWS_ENDPOINT_URL_*), so the same
tests run against the endpoint SageMaker serves. See docs/testing.md.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn, Protocol

import pytest

from .errors import SpecError
from .serving.serve import end_with_parent
from .spec import Pipeline, load_pipeline

#: Names a deployed endpoint: the tests then run against it, and no `up` is started.
ENDPOINT_VARIABLE = "COMPOSER_TEST_ENDPOINT"
#: Seconds `up` has to print its ready line. The first run builds the containers' environments.
READY_TIMEOUT = 900.0
#: Seconds `up` has to stop after SIGTERM (each container gets SageMaker's 30 s) before SIGKILL.
STOP_TIMEOUT = 120.0
#: The client's read timeout: longer than a container's default invocation_timeout (60 s), so
#: the gateway's own timeout error reaches the test rather than the client's.
READ_TIMEOUT = 70.0
#: Lines of `up`'s output a failure to start shows (all of it is in the log file).
TAIL_LINES = 40


@dataclass
class Endpoint:
    """What a test talks to: the endpoint's name and a boto3 `sagemaker-runtime` client."""

    name: str
    client: Any  # botocore's generated SageMakerRuntime client
    pipeline: Pipeline
    #: The gateway's URL while `up` serves it; None against a deployed endpoint.
    url: str | None = None
    #: `up`'s output (its containers' logs included); None against a deployed endpoint.
    log: Path | None = None

    @property
    def local(self) -> bool:
        return self.url is not None

    def trace(self, request_id: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """The gateway's last `limit` hops, oldest first (of one request with `request_id`,
        e.g. `answer["ResponseMetadata"]["RequestId"]`), as `/_composer/api/trace` gives them.

        A deployed endpoint has no such record: the test is skipped there, as it cannot check
        what it means to.
        """
        if self.url is None:
            pytest.skip("the per-hop trace is the local gateway's; a deployed endpoint has none")
        query = urllib.parse.urlencode(
            {"limit": limit, **({"request_id": request_id} if request_id else {})}
        )
        with urllib.request.urlopen(f"{self.url}/_composer/api/trace?{query}", timeout=30) as r:
            hops: list[dict[str, Any]] = json.load(r)["hops"]
        return hops


class UpFactory(Protocol):
    """The `composer_up` fixture's value."""

    def __call__(
        self, pipeline: str | os.PathLike[str], *up_args: str, ready_timeout: float = ...
    ) -> Endpoint: ...


def runtime_client(url: str | None) -> Any:
    """An unmodified boto3 client: for the local gateway at `url` (any credentials do, as it
    checks no signature), or from the standard chain when `url` is None. One attempt per call,
    so a test sees the answer it got, not a retry's."""
    import boto3
    from botocore.config import Config

    config = Config(read_timeout=READ_TIMEOUT, retries={"total_max_attempts": 1})
    if url is None:
        return boto3.client("sagemaker-runtime", config=config)
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    return boto3.client(
        "sagemaker-runtime",
        endpoint_url=url,
        region_name=region,
        aws_access_key_id="composer-local",
        aws_secret_access_key="composer-local",
        config=config,
    )


@dataclass
class _Up:
    """One `sm-compose up` process, its output kept in a file and its last lines in memory."""

    proc: subprocess.Popen[bytes]
    log: Path
    ready_line: re.Pattern[str]
    lines: deque[str] = field(default_factory=lambda: deque(maxlen=TAIL_LINES))
    url: str | None = None
    _ready: threading.Event = field(default_factory=threading.Event)

    @classmethod
    def start(cls, pipeline: Path, name: str, args: Sequence[str], log: Path) -> _Up:
        proc = subprocess.Popen(
            [sys.executable, "-m", "composer", "up", str(pipeline), "--port", "0", *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env={**os.environ, "NO_COLOR": "1"},
            start_new_session=True,  # its own group, so a stop that overruns can kill all of it
            # SIGTERM to `up` if this process dies without its finalizers (SIGKILL, a timeout's
            # os._exit): `up` then stops its containers itself. Linux only; elsewhere the
            # fixture's own stop covers every ordinary end of the run.
            preexec_fn=end_with_parent,
        )
        # `up`'s own line, "NAME ready at http://HOST:PORT (endpoint NAME, ...)"; containers'
        # lines start with their hostname and a bar.
        up = cls(proc, log, re.compile(rf"^{re.escape(name)} ready at (http://\S+) "))
        threading.Thread(target=up._pump, daemon=True).start()
        return up

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        with self.log.open("w", encoding="utf-8") as out:
            for raw in self.proc.stdout:
                line = raw.decode("utf-8", "replace").rstrip("\n")
                self.lines.append(line)
                out.write(line + "\n")
                out.flush()
                found = self.ready_line.match(line)
                if found and self.url is None:
                    self.url = found.group(1)
                    self._ready.set()
        self._ready.set()  # the output ended: `up` exited

    def wait_ready(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while not self._ready.wait(0.5):
            if time.monotonic() > deadline:
                self._fail(f"`sm-compose up` was not ready within {timeout:g} s")
        if self.url is None:
            code = self.proc.wait()
            self._fail(f"`sm-compose up` exited {code} before it was ready")
        return self.url

    def stop(self) -> None:
        """SIGTERM, as Ctrl-C would: `up` stops its containers and exits. SIGKILL to its process
        group only if it overruns."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def _fail(self, what: str) -> NoReturn:
        tail = "\n".join(self.lines) or "(no output)"
        pytest.fail(f"{what}; its last lines (all of them in {self.log}):\n{tail}", pytrace=False)


@contextlib.contextmanager
def serving(
    pipeline: str | os.PathLike[str],
    *,
    args: Sequence[str] = (),
    log_dir: Path,
    ready_timeout: float = READY_TIMEOUT,
) -> Iterator[Endpoint]:
    """The endpoint of `pipeline` for the block: `up` started and ready (or, with
    COMPOSER_TEST_ENDPOINT set, the deployed endpoint it names), stopped after the block."""
    path = Path(pipeline).resolve()
    try:
        spec = load_pipeline(path)
    except SpecError as exc:  # as `validate` prints it: every error, FILE:LINE: path: message
        pytest.fail("\n".join(str(issue) for issue in exc.issues), pytrace=False)
    deployed = os.environ.get(ENDPOINT_VARIABLE, "").strip()
    if deployed:
        yield Endpoint(name=deployed, client=runtime_client(None), pipeline=spec)
        return
    log = log_dir / f"{spec.name}.up.log"
    up = _Up.start(path, spec.name, args, log)
    try:
        url = up.wait_ready(ready_timeout)
        yield Endpoint(name=spec.name, client=runtime_client(url), pipeline=spec, url=url, log=log)
    finally:
        up.stop()


@pytest.fixture(scope="module")
def composer_up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UpFactory]:
    """`composer_up(pipeline, *up_args, ready_timeout=900)`: the pipeline's endpoint, served by
    `sm-compose up` for this test module (or the deployed endpoint COMPOSER_TEST_ENDPOINT
    names), stopped after the module's last test, passed or failed."""
    with contextlib.ExitStack() as stack:

        def start(
            pipeline: str | os.PathLike[str], *up_args: str, ready_timeout: float = READY_TIMEOUT
        ) -> Endpoint:
            return stack.enter_context(
                serving(
                    pipeline,
                    args=up_args,
                    log_dir=tmp_path_factory.mktemp("composer-up"),
                    ready_timeout=ready_timeout,
                )
            )

        yield start


def pytest_report_header(config: pytest.Config) -> str | None:
    deployed = os.environ.get(ENDPOINT_VARIABLE, "").strip()
    if deployed:
        return f"composer.testing: against the deployed endpoint {deployed!r} ({ENDPOINT_VARIABLE})"
    return None
