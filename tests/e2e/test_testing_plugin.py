"""composer.testing, the pytest plugin for users' tests: its `composer_up` fixture serves the
pipeline for a test module and stops everything afterwards, even when a test fails; with
COMPOSER_TEST_ENDPOINT it starts nothing and talks to the endpoint that variable names.

Each case is a user's own pytest run (a process of its own) on a project `init` wrote."""

from __future__ import annotations

import signal
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from .conftest import (
    faulty_pipeline,
    init_project,
    processes_under,
    running_up,
    start_users_pytest,
    users_pytest,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

FAILING = """
import json
from pathlib import Path

import pytest
from composer.testing import Endpoint, UpFactory

PIPELINE = Path(__file__).resolve().parents[1] / "pipeline.yaml"


@pytest.fixture(scope="module")
def endpoint(composer_up: UpFactory) -> Endpoint:
    return composer_up(PIPELINE)


def test_fails_while_up_serves(endpoint: Endpoint) -> None:
    Path(__file__).with_name("url.txt").write_text(endpoint.url or "")
    answer = endpoint.client.invoke_endpoint(
        EndpointName=endpoint.name, ContentType="application/json", Body=json.dumps({"name": "x"})
    )
    assert json.loads(answer["Body"].read()) == {"message": "something else"}
"""

SLEEPING = """
import time
from pathlib import Path


def test_sleeps_while_up_serves(composer_up):
    endpoint = composer_up(Path(__file__).resolve().parents[1] / "pipeline.yaml")
    Path(__file__).with_name("url.txt").write_text(endpoint.url)
    time.sleep(600)
"""

DEPLOYED = """
from pathlib import Path

from composer.testing import Endpoint, UpFactory

PIPELINE = Path(__file__).resolve().parents[1] / "pipeline.yaml"


def test_starts_nothing(composer_up: UpFactory) -> None:
    endpoint: Endpoint = composer_up(PIPELINE)
    assert endpoint.name == "deployed-one"
    assert not endpoint.local and endpoint.url is None and endpoint.log is None
"""


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/ping", timeout=5):
            return True
    except (urllib.error.URLError, ConnectionError):
        return False


def test_a_failing_test_still_stops_everything(tmp_path: Path) -> None:
    project = init_project(tmp_path / "app", "minimal")
    (project / "tests" / "test_fails.py").write_text(FAILING)
    run = users_pytest(project, "tests")
    assert run.returncode == 1, run.stdout + run.stderr
    assert "FAILED tests/test_fails.py::test_fails_while_up_serves" in run.stdout
    assert "PASSED tests/test_pipeline.py::test_greets" in run.stdout
    url = (project / "tests" / "url.txt").read_text()
    assert url.startswith("http://127.0.0.1:"), "the fixture served the test through `up`"
    assert not answers(url), "the gateway is gone"
    assert not processes_under(project), "no `up`, serve, nginx or gunicorn left"


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "kill-9"])
def test_a_killed_run_stops_everything(tmp_path: Path, sig: signal.Signals) -> None:
    """Ctrl-C runs the fixture's stop; a SIGKILL of pytest skips it, and `up` (told by the kernel
    that its parent died) stops its containers itself."""
    project = init_project(tmp_path / "app", "minimal")
    (project / "tests" / "test_sleeps.py").write_text(SLEEPING)
    proc = start_users_pytest(project, "tests/test_sleeps.py")
    url_file = project / "tests" / "url.txt"
    try:
        deadline = time.monotonic() + 300
        while not url_file.exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the fixture never served"
            time.sleep(0.2)
        assert answers(url_file.read_text())
        proc.send_signal(sig)
        proc.communicate(timeout=180)
    finally:
        proc.kill()
    deadline = time.monotonic() + 60  # after a SIGKILL, `up` stops on its own, asynchronously
    while processes_under(project) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not processes_under(project), "no `up`, serve, nginx or gunicorn left"
    assert not answers(url_file.read_text())


def test_the_same_tests_run_against_a_deployed_endpoint(tmp_path: Path) -> None:
    """COMPOSER_TEST_ENDPOINT names the endpoint; the client comes from boto3's standard chain,
    here pointed by AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME at an `up` the test itself runs, as a
    stand-in for SageMaker."""
    project = init_project(tmp_path / "app", "minimal")
    (project / "tests" / "test_deployed.py").write_text(DEPLOYED)
    with running_up(project / "pipeline.yaml") as up:
        chain = {
            "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": up.url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
        deployed = {**chain, "COMPOSER_TEST_ENDPOINT": "deployed-one"}
        named_one = users_pytest(project, "tests/test_deployed.py", env=deployed)
        assert named_one.returncode == 0, named_one.stdout + named_one.stderr
        assert "against the deployed endpoint 'deployed-one'" in named_one.stdout
        run = users_pytest(
            project, "tests/test_pipeline.py", env={**chain, "COMPOSER_TEST_ENDPOINT": up.name}
        )
        assert run.returncode == 0, run.stdout + run.stderr
        assert "2 passed" in run.stdout


def test_a_pipeline_that_does_not_start_fails_with_ups_own_words(tmp_path: Path) -> None:
    pipeline = faulty_pipeline(
        tmp_path,
        "broken",
        {"broken": {"environment": {"FAULTY_FAIL_ON_LOAD": "no model here"}}},
    )
    (tmp_path / "test_broken.py").write_text(
        "def test_never_runs(composer_up):\n"
        f"    composer_up({str(pipeline)!r}, '--startup-timeout', '30')\n"
    )
    run = users_pytest(tmp_path, "test_broken.py")
    assert run.returncode == 1, run.stdout + run.stderr
    assert "`sm-compose up` exited" in run.stdout, run.stdout
    assert "no model here" in run.stdout
    assert "Traceback" not in run.stdout
    assert not processes_under(tmp_path)


def test_a_spec_error_names_file_line_and_field(tmp_path: Path) -> None:
    (tmp_path / "pipeline.yaml").write_text("name: bad\nmode: Parallel\ncontainers: []\n")
    (tmp_path / "test_bad.py").write_text(
        "def test_never_runs(composer_up):\n    composer_up('pipeline.yaml')\n"
    )
    run = users_pytest(tmp_path, "test_bad.py")
    assert run.returncode == 1, run.stdout + run.stderr
    assert "pipeline.yaml:2: mode: got 'Parallel'" in run.stdout, run.stdout
