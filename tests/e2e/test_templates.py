"""Every `sm-compose init` template, as a user meets it: written, valid, served by `up`, and its
own generated tests passing (they use the composer.testing fixture), with nothing left running."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from composer.cli.init import TEMPLATES

from .conftest import init_project, processes_under, users_pytest

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.mark.parametrize("template", TEMPLATES)
def test_template_validates_serves_and_passes_its_own_tests(
    template: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if template == "async":
        request.getfixturevalue("moto")  # S3 for the requests and answers, via AWS_ENDPOINT_URL_S3
    project = init_project(tmp_path / f"{template}-app", template)
    validate = subprocess.run(
        [sys.executable, "-m", "composer", "validate", "pipeline.yaml"],
        cwd=project,
        capture_output=True,
        text=True,
        check=False,
    )
    assert validate.returncode == 0, validate.stderr
    run = users_pytest(project, "tests")
    assert run.returncode == 0, run.stdout + run.stderr
    assert " passed" in run.stdout and "failed" not in run.stdout
    assert not processes_under(project), "nothing outlives the test run"
