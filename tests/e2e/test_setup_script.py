"""scripts/setup.sh's fallback when uv cannot be had: run for real in a temp copy of the scripts.

The copy holds setup.sh, its config and pipconfig.py (what the script runs) and a project of the
same name with no dependencies (so pip installs it from the warm cache in seconds, not the real
project's dev tools), with the model-archive scripts as no-ops. No uv on PATH, and a pip
constraint no uv release meets: pip cannot install uv, so setup.sh must install with pip.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from .conftest import REPO

pytestmark = [pytest.mark.slow]

PROJECT = """\
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "sagemaker-composer"
version = "0"

[project.optional-dependencies]
dev = []

[tool.setuptools]
packages = ["stand_in"]
"""


def _copy(tmp: Path) -> Path:
    copy = tmp / "checkout"
    (copy / "scripts").mkdir(parents=True)
    for name in ("setup.sh", "config"):
        shutil.copy(REPO / "scripts" / name, copy / "scripts" / name)
    for name in ("make-spacy-model.py", "make-spacy-models.py"):
        (copy / "scripts" / name).write_text("import sys\n")  # no model archives here
    (copy / "composer" / "runners").mkdir(parents=True)
    shutil.copy(REPO / "composer" / "runners" / "pipconfig.py", copy / "composer" / "runners")
    (copy / "pyproject.toml").write_text(PROJECT)
    (copy / "stand_in").mkdir()
    (copy / "stand_in" / "__init__.py").write_text("")
    return copy


def _path_without_uv() -> str:
    dirs = os.environ.get("PATH", "/usr/bin:/bin").split(os.pathsep)
    return os.pathsep.join(d for d in dirs if d and not (Path(d) / "uv").exists())


def test_pip_installs_the_project_when_pip_cannot_install_uv(tmp_path: Path) -> None:
    copy = _copy(tmp_path)
    constraints = tmp_path / "constraints.txt"
    constraints.write_text("uv==0.0.0\n")  # no such release: pip's install of uv fails
    env = {k: v for k, v in os.environ.items() if not k.startswith(("UV_", "VIRTUAL_ENV"))}
    env.pop("COMPOSER_ENV_BUILDER", None)  # uv wanted: the fallback is what is tested
    env.update(PATH=_path_without_uv(), PIP_CONSTRAINT=str(constraints))
    done = subprocess.run(
        ["bash", "scripts/setup.sh"], cwd=copy, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    said = done.stderr
    assert "setup: creating .venv" in said
    assert "setup: bootstrapping uv into .venv with pip" in said
    assert "setup: pip could not install uv; installing with pip instead" in said
    assert "installing sagemaker-composer into .venv (pip)" in said
    assert not (copy / ".venv" / "bin" / "uv").exists()
    found = subprocess.run(
        [str(copy / ".venv" / "bin" / "python"), "-c", "import stand_in; print(stand_in.__file__)"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert Path(found.stdout.strip()).parent == copy / "stand_in", "installed editable"
    assert (copy / ".venv" / ".composer-installed").exists()
