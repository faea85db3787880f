"""`sm-compose init`: what each template writes, and that it never writes over a file."""

from __future__ import annotations

import json
import tarfile
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from composer.cli import cli
from composer.cli.init import TEMPLATES
from composer.spec import json_schema, load_pipeline


def run(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args))


def files_under(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


def test_every_shipped_template_is_a_choice() -> None:
    shipped = {e.name for e in (resources.files("composer") / "templates").iterdir() if e.is_dir()}
    assert shipped == set(TEMPLATES)


@pytest.mark.parametrize("template", TEMPLATES)
def test_each_template_writes_a_valid_project(tmp_path: Path, template: str) -> None:
    project = tmp_path / "My Project"
    result = run("init", str(project), "--template", template)
    assert result.exit_code == 0, result.output
    spec = load_pipeline(project / "pipeline.yaml")  # raises on any spec error
    assert spec.name == "my-project"
    pipeline_text = (project / "pipeline.yaml").read_text()
    assert pipeline_text.startswith("# yaml-language-server: $schema=pipeline.schema.json\n")
    assert json.loads((project / "pipeline.schema.json").read_text()) == json_schema()
    for container in spec.containers:
        assert container.build is not None
        folder = project / container.build
        assert {"inference.py", "requirements.txt"} <= {p.name for p in folder.iterdir()}
        assert "from composer_serving import" in (folder / "inference.py").read_text()
    test = (project / "tests" / "test_pipeline.py").read_text()
    assert "composer_up(PIPELINE)" in test
    assert (project / "README.md").read_text().startswith("# my-project\n")
    assert ".composer/" in (project / ".gitignore").read_text().splitlines()
    written = files_under(project)
    assert not [rel for rel in written if b"__NAME__" in (project / rel).read_bytes()]
    assert not [rel for rel in written if "__pycache__" in rel or rel.endswith(".pyc")]
    listed = {line.strip() for line in result.output.splitlines()[1:-1]}
    assert listed == written


def test_multi_model_archives_are_packed_from_their_sources(tmp_path: Path) -> None:
    assert run("init", str(tmp_path / "a"), "--template", "multi-model").exit_code == 0
    assert run("init", str(tmp_path / "b"), "--template", "multi-model").exit_code == 0
    for model in ("en", "fr"):
        archive = tmp_path / "a" / "models" / f"{model}.tar.gz"
        with tarfile.open(archive) as tar:
            member = tar.extractfile("model.json")
            assert member is not None
            assert json.loads(member.read())["language"] == model
        same = tmp_path / "b" / "models" / f"{model}.tar.gz"
        assert archive.read_bytes() == same.read_bytes(), "packed the same way every time"


def test_refuses_to_overwrite_and_names_every_file_in_the_way(tmp_path: Path) -> None:
    (tmp_path / "tests").mkdir()
    (tmp_path / "pipeline.yaml").write_text("mine\n")
    (tmp_path / "tests" / "test_pipeline.py").write_text("mine\n")
    (tmp_path / "hello").write_text("a file where init wants a folder\n")
    before = files_under(tmp_path)
    result = run("init", str(tmp_path), "--name", "demo")
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert "refusing to overwrite 4 existing file(s); nothing was written" in result.output
    for rel in ("pipeline.yaml", "tests/test_pipeline.py", "hello/inference.py"):
        assert str(tmp_path / rel) in result.output
    assert files_under(tmp_path) == before, "nothing written"
    assert (tmp_path / "pipeline.yaml").read_text() == "mine\n"


def test_writes_beside_other_files_in_an_existing_folder(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("kept\n")
    assert run("init", str(tmp_path), "--name", "demo").exit_code == 0
    assert (tmp_path / "notes.txt").read_text() == "kept\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--name", "Bad_Name"], "got name 'Bad_Name'; a project name has lower-case letters"),
        (["--name", "x" * 55], "at most 54 characters"),
        (["--template", "nope"], "'nope' is not one of 'minimal', 'direct', 'serial'"),
    ],
)
def test_bad_options_say_what_was_got_and_what_is_allowed(
    tmp_path: Path, args: list[str], message: str
) -> None:
    result = run("init", str(tmp_path / "p"), *args)
    assert result.exit_code == 2
    assert message in result.output
    assert not (tmp_path / "p").exists()


def test_a_file_as_the_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "p").write_text("")
    result = run("init", str(tmp_path / "p"), "--name", "demo")
    assert result.exit_code == 2
    assert "got a file; init writes into a folder" in result.output
