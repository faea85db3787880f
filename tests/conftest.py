"""What every tier of tests shares: which tests plain `pytest` runs, ports, runtime clients,
process trees, AWS as moto gives it, and transform options for JSON Lines.

Which tests run: plain `pytest` (no paths, no -m) runs the fast tiers, that is the unit tests and
the integration tests not marked slow, e2e, engine or aws. Naming files or folders runs every
test in them (`pytest tests/e2e/test_faults.py`), -m picks by marker (`pytest -m engine`), and
`pytest -m ""` (what scripts/test.sh, and so CI, runs) runs everything.

moto runs two ways. `moto` is its standalone server, started once per session, emptied for
each module that uses it, and reached by unmodified clients through AWS_ENDPOINT_URL_*, which
the fixture sets for that module. `aws` is moto inside this process (mock_aws), fresh for each
test. moto has no UpdateEndpoint and runs nothing: tests that need either deploy to the local
SageMaker (tests/e2e/conftest.py's `sagemaker_on_local`), with S3 on moto's server.

OCI engines (tests/engines.py): `engine` is each engine in turn, Podman then Docker, set up once
per session for every module that takes it; `registry` a local registry; `nlp_images` the NLP
example with its images built once per engine.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

import psutil
import pytest

from composer.runners.engine import ENGINES

if TYPE_CHECKING:
    from pathlib import Path

    from composer.batch import TransformOptions
    from composer.runners.engine import Engine
    from tests.integration.aws_fixtures import MotoServer

# --- which tests plain `pytest` runs ---------------------------------------------------------

FAST_TIERS = "not (slow or e2e or engine or aws)"


def _chose_markers(args: tuple[str, ...]) -> bool:
    return any(a == "-m" or (a.startswith("-m") and not a.startswith("--")) for a in args)


def pytest_configure(config: pytest.Config) -> None:
    named_nothing = config.args_source == pytest.Config.ArgsSource.TESTPATHS
    if named_nothing and not _chose_markers(config.invocation_params.args):
        config.option.markexpr = FAST_TIERS


def pytest_report_header(config: pytest.Config) -> str | None:
    if config.option.markexpr != FAST_TIERS:
        return None
    return f"fast tiers only (-m '{FAST_TIERS}'); every test: pytest -m '' or scripts/test.sh"


# --- ports, runtime clients, process trees -------------------------------------------------


def runtime_client_for(
    url: str,
    *,
    timeout: float = 70,
    region: str = "us-east-1",
    access_key: str = "testing",
    secret_key: str = "testing",
    session_token: str | None = None,
) -> Any:
    """An unmodified boto3 sagemaker-runtime client for the gateway at `url`, one attempt per
    call (a retry would hide the answer under test). The gateway checks no signature, so any
    credentials do."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "sagemaker-runtime",
        endpoint_url=url,
        region_name=region,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        aws_session_token=session_token,
        config=Config(retries={"max_attempts": 1}, read_timeout=timeout),
    )


def sagemaker_client_for(url: str, *, region: str = "us-east-1", timeout: float = 70) -> Any:
    """An unmodified boto3 `sagemaker` (control plane) client for the local SageMaker at `url`,
    one attempt per call."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "sagemaker",
        endpoint_url=url,
        region_name=region,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"max_attempts": 1}, read_timeout=timeout),
    )


@pytest.fixture(scope="session")
def runtime_client() -> Callable[..., Any]:
    """`runtime_client(url, timeout=..., ...)`: see runtime_client_for."""
    return runtime_client_for


@pytest.fixture(scope="session")
def free_port() -> Callable[[], int]:
    """`free_port()`: a loopback port nothing listens on, picked as `up` picks its own."""
    from composer.runners.contract import free_port

    return free_port


def alive(procs: Iterable[psutil.Process]) -> list[psutil.Process]:
    """Those of `procs` still running (a zombie has ended: only its parent has not reaped it)."""
    found = []
    for proc in procs:
        try:
            if proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except psutil.NoSuchProcess:
            pass
    return found


# --- AWS as moto gives it, and transform options -------------------------------------------


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    from tests.integration.aws_fixtures import start_moto_server

    yield from start_moto_server()


@pytest.fixture(scope="module")
def moto(moto_server: MotoServer) -> Iterator[MotoServer]:
    """moto's server, empty when the module starts, with boto3's environment pointing at it."""
    moto_server.reset()
    with pytest.MonkeyPatch.context() as mp:
        for key, value in moto_server.env().items():
            mp.setenv(key, value)
        yield moto_server


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """moto in this process, fresh for the test; no endpoint URL leads elsewhere."""
    from moto import mock_aws

    from tests.aws_pipelines import REGION

    for key in [k for k in os.environ if k.startswith("AWS_ENDPOINT_URL")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws():
        yield


@pytest.fixture
def jsonl() -> Callable[..., TransformOptions]:
    """TransformOptions for JSON Lines, a record a line and an answer a line; keywords add or
    override options."""
    from composer.batch import TransformOptions

    def options(**given: Any) -> TransformOptions:
        base: dict[str, Any] = {
            "content_type": "application/jsonlines",
            "accept": "application/jsonlines",
            "split_type": "Line",
            "assemble_with": "Line",
        }
        return TransformOptions(**{**base, **given})

    return options


# --- OCI engines (tests/engines.py) --------------------------------------------------------


@pytest.fixture(scope="session", params=ENGINES)
def engine(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Engine]:
    """Each engine in turn, set up as CI sets it up; every test that takes it runs per engine."""
    from tests.engines import docker_engine, podman_engine

    if request.param == "podman":
        yield from podman_engine()
    else:
        yield from docker_engine(tmp_path_factory.mktemp("docker-config"))


@pytest.fixture
def registry(engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """HOST:PORT of a local registry for the test (its engine's set-up installs it)."""
    from tests.engines import local_registry

    with local_registry(tmp_path_factory.mktemp("registry")) as address:
        yield address


@pytest.fixture(scope="session")
def nlp_images(engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """nlp-direct written into a private folder, its images built (or found) once per engine.
    An unchanged context is not built again, so later builds of the example find them."""
    from tests.e2e.conftest import nlp_pipeline
    from tests.engines import cli

    pipeline = nlp_pipeline(tmp_path_factory.mktemp("images"), "Direct")
    proc = cli("build", str(pipeline), "--engine", engine.name)
    assert proc.returncode == 0, proc.stderr
    print(f"\n[engine] {engine.name}: {proc.stdout.strip()}")
    return pipeline
