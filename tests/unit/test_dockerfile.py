"""The generated Dockerfile: what SageMaker reads from it, parsed as a builder would."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from dockerfile_parse import DockerfileParser

from composer.errors import UsageError
from composer.render.dockerfile import (
    BIND_TO_PORT_LABEL,
    DEFAULT_BASE_IMAGE,
    MULTI_MODEL_LABEL,
    render_dockerfile,
)

GOLDEN = Path(__file__).parent / "golden"


def _parse(text: str, tmp_path: Path, build_args: dict[str, str] | None = None) -> DockerfileParser:
    parser = DockerfileParser(path=str(tmp_path), build_args=build_args or {})
    parser.content = text
    return parser


def _instructions(parser: DockerfileParser, name: str) -> list[str]:
    return [i["value"] for i in parser.structure if i["instruction"] == name]


@pytest.mark.parametrize(
    ("multi_model", "golden"), [(False, "Dockerfile"), (True, "Dockerfile.multi-model")]
)
def test_matches_golden_file(multi_model: bool, golden: str) -> None:
    text = render_dockerfile(base_image=DEFAULT_BASE_IMAGE, multi_model=multi_model)
    path = GOLDEN / golden
    if os.environ.get("UPDATE_GOLDEN"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8"), f"{path} differs (UPDATE_GOLDEN=1 rewrites)"


def test_deterministic() -> None:
    assert render_dockerfile(base_image="python:3.11-slim") == render_dockerfile(
        base_image="python:3.11-slim"
    )


def test_labels_single_model(tmp_path: Path) -> None:
    labels = _parse(render_dockerfile(), tmp_path).labels
    assert labels == {BIND_TO_PORT_LABEL: "true"}


def test_labels_multi_model(tmp_path: Path) -> None:
    labels = _parse(render_dockerfile(multi_model=True), tmp_path).labels
    assert labels == {BIND_TO_PORT_LABEL: "true", MULTI_MODEL_LABEL: "true"}


def test_base_image_is_a_build_argument(tmp_path: Path) -> None:
    text = render_dockerfile(base_image="localhost/composer-base:bookworm")
    assert _parse(text, tmp_path).baseimage == "localhost/composer-base:bookworm"
    swapped = _parse(text, tmp_path, {"BASE_IMAGE": "python:3.11-slim"})
    assert swapped.baseimage == "python:3.11-slim"
    assert _instructions(swapped, "ARG") == ["BASE_IMAGE=localhost/composer-base:bookworm"]


def test_entrypoint_and_cmd_are_exec_form(tmp_path: Path) -> None:
    parser = _parse(render_dockerfile(), tmp_path)
    (entrypoint,) = _instructions(parser, "ENTRYPOINT")
    (cmd,) = _instructions(parser, "CMD")
    # JSON arrays: exec form, so SIGTERM reaches the server and `docker run IMAGE serve` works.
    assert json.loads(entrypoint) == ["/opt/venv/bin/python", "/opt/program/serve"]
    assert json.loads(cmd) == ["serve"]


def test_environment(tmp_path: Path) -> None:
    env = _parse(render_dockerfile(), tmp_path).envs
    assert env["PYTHONUNBUFFERED"] == "1"
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["PATH"].startswith("/opt/venv/bin:")


def test_requirements_are_installed_before_the_code_is_copied(tmp_path: Path) -> None:
    parser = _parse(render_dockerfile(), tmp_path)
    steps = [(i["instruction"], i["value"]) for i in parser.structure]
    copies = [n for n, (kind, _) in enumerate(steps) if kind == "COPY"]
    pip = next(n for n, (kind, v) in enumerate(steps) if kind == "RUN" and "pip install" in v)
    assert steps[copies[0]][1] == "requirements.txt /opt/program/requirements.txt"
    assert copies[0] < pip < copies[1]
    assert steps[copies[1]][1] == ". /opt/program"
    assert "python3 -m venv /opt/venv" in steps[pip][1]


def test_nginx_from_debian_and_port(tmp_path: Path) -> None:
    parser = _parse(render_dockerfile(), tmp_path)
    runs = " ".join(_instructions(parser, "RUN"))
    assert "apt-get install -y --no-install-recommends nginx-light" in runs
    assert "rm -rf /var/lib/apt/lists/*" in runs
    assert _instructions(parser, "EXPOSE") == ["8080"]


def test_no_machine_specific_flags() -> None:
    text = render_dockerfile()
    for word in ("--network", "ca-certificates.crt", "ulimit", "--mount", "proxy"):
        assert word not in text


@pytest.mark.parametrize(
    "bad", ["", "python 3.11", "Python:3.11", "python:3.11\nRUN rm -rf /", "$EVIL", "img:tag:x"]
)
def test_bad_base_image_is_refused(bad: str) -> None:
    with pytest.raises(UsageError, match="base image: got"):
        render_dockerfile(base_image=bad)


@pytest.mark.parametrize(
    "good",
    [
        "python:3.11-slim",
        "localhost/composer-base:bookworm",
        "127.0.0.1:5000/team/base:1",
        "123456789012.dkr.ecr.eu-west-1.amazonaws.com/base@sha256:" + "a" * 64,
    ],
)
def test_good_base_images(good: str, tmp_path: Path) -> None:
    assert _parse(render_dockerfile(base_image=good), tmp_path).baseimage == good
