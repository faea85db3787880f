"""The package as a user gets it: a wheel, installed into a fresh virtualenv (no editable install,
no checkout on the path), used from a folder of its own on the shipped NLP example."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from .conftest import READY_TIMEOUT, Up, free_port, processes_under

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
PIPELINE = "pipelines/nlp-direct.yaml"
APPLE = "Apple is looking at buying U.K. startup for $1 billion"


def _environment() -> dict[str, str]:
    """This process's environment without whatever would put the checkout on the path."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return {**env, "NO_COLOR": "1"}


def _run(argv: list[str | Path], cwd: Path, timeout: float = 300) -> str:
    done = subprocess.run(
        [str(a) for a in argv],
        cwd=cwd,
        env=_environment(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, f"{argv} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def bin_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`pip wheel --no-deps` of a clean copy of the package, then `pip install` of that wheel."""
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "source"  # a stale build/ in the checkout could put back a file the wheel lacks
    shutil.copytree(
        REPO / "composer",
        source / "composer",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
    )
    for name in ("pyproject.toml", "README.md"):
        shutil.copyfile(REPO / name, source / name)
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", tmp / "dist", source], tmp)
    (wheel,) = (tmp / "dist").glob("sagemaker_composer-*.whl")
    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", venv], tmp)
    _run([venv / "bin" / "python", "-m", "pip", "install", "-q", wheel], tmp)
    where = _run([venv / "bin" / "python", "-c", "import composer; print(composer.__file__)"], tmp)
    assert Path(where.strip()).is_relative_to(venv), f"composer imported from {where}"
    return venv / "bin"


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example as a user copies it: the pipeline, its containers and its model archive."""
    folder = tmp_path_factory.mktemp("project")
    (folder / "pipelines").mkdir()
    shutil.copyfile(REPO / PIPELINE, folder / PIPELINE)
    for name in ("spacy", "textblob"):
        shutil.copytree(REPO / "containers" / name, folder / "containers" / name)
    (folder / "artifacts").mkdir()
    archive = "artifacts/spacy-model.tar.gz"
    shutil.copyfile(REPO / archive, folder / archive)
    return folder


def test_validate(bin_dir: Path, project: Path) -> None:
    _run([bin_dir / "sm-compose", "validate", PIPELINE], project)


def test_build_writes_complete_contexts(bin_dir: Path, project: Path) -> None:
    _run([bin_dir / "sm-compose", "build", PIPELINE, "--out", "out"], project)
    for host in ("spacy", "textblob"):
        assert os.access(project / "out" / host / "serve", os.X_OK)
        assert (project / "out" / host / "composer_serving" / "serve.py").is_file()
    assert json.loads((project / "out" / "sagemaker" / "create_model.json").read_text())


def test_up_serves_an_invoke_and_stops_cleanly(bin_dir: Path, project: Path) -> None:
    port = free_port()
    log = project / "up.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [str(bin_dir / "sm-compose"), "up", PIPELINE, "--port", str(port)],
            cwd=project,
            env=_environment(),
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
    up = Up(proc, port, project / ".composer", "nlp-direct")
    try:
        deadline = time.monotonic() + READY_TIMEOUT
        while "ready at" not in log.read_text():
            assert proc.poll() is None, f"`up` exited {proc.returncode}:\n{log.read_text()}"
            assert time.monotonic() < deadline, f"`up` not ready:\n{log.read_text()}"
            time.sleep(0.5)
        client: Any = up.client()
        answer = client.invoke_endpoint(
            EndpointName="nlp-direct",
            TargetContainerHostname="spacy",
            ContentType="application/json",
            Body=json.dumps({"text": APPLE}).encode(),
        )
        entities = {(e["text"], e["label"]) for e in json.loads(answer["Body"].read())["entities"]}
        assert ("Apple", "ORG") in entities
        with urllib.request.urlopen(f"{up.url}/_composer/app.js", timeout=30) as page:
            assert page.status == 200, "the inspector's files are package data"
    finally:
        code = up.stop()
    assert code == 0, log.read_text()
    assert not processes_under(project), "nothing outlives `up`"


def test_init_writes_a_project_whose_tests_pass(bin_dir: Path, tmp_path: Path) -> None:
    """The templates are in the wheel, and its `pytest11` entry point loads composer.testing:
    the generated tests find `composer_up` with no `-p`."""
    _run([bin_dir / "python", "-m", "pip", "install", "-q", "pytest"], tmp_path)
    _run([bin_dir / "sm-compose", "init", "app", "--template", "serial"], tmp_path)
    project = tmp_path / "app"
    assert (project / ".gitignore").is_file(), "dotfiles are package data too"
    out = _run([bin_dir / "python", "-m", "pytest", "-p", "no:cacheprovider", "tests"], project)
    assert "3 passed" in out
    assert not processes_under(project), "nothing outlives the test run"
