"""Container environments built for real: with uv, with pip where uv is not usable, and the pins'
hashes checked by both. Each test has a cache folder of its own (never the machine's)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from composer.runners.envs import (
    ENV_VAR_BUILDER,
    EnvironmentError_,
    ensure_env,
    ensure_envs,
    python_of,
)
from composer.serving import RUNTIME_REQUIREMENTS

pytestmark = [pytest.mark.slow]

FALCON = RUNTIME_REQUIREMENTS[0]
WRONG = "sha256:" + "0" * 64


@pytest.fixture(autouse=True)
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COMPOSER_CACHE_DIR", str(tmp_path / "cache"))


def _requirements(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


def _imports_falcon(env: Path) -> str:
    code = "import falcon; print(falcon.__version__)"
    return subprocess.run(
        [str(python_of(env)), "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()


def test_two_environments_at_once_with_uv(tmp_path: Path) -> None:
    said: list[str] = []
    runtime = _requirements(tmp_path, "a.txt", "".join(f"{r}\n" for r in RUNTIME_REQUIREMENTS))
    alone = _requirements(tmp_path, "b.txt", f"{FALCON}\n")
    envs = ensure_envs([(runtime, "one"), (alone, "two")], on_progress=said.append)
    assert [(e / ".ready").read_text().split()[0] for e in envs] == ["uv", "uv"]
    assert _imports_falcon(envs[1]) == FALCON.split("==")[1]
    # one display: a line may carry both builds' steps
    assert any("one: " in line and " · two: " in line for line in said)
    assert ensure_env(alone, label="again") == envs[1]  # cached


def test_pip_builds_where_uv_cannot_take_pips_configuration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PIP_PREFER_BINARY", "1")  # pip's own option; uv has none like it
    said: list[str] = []
    env = ensure_env(_requirements(tmp_path, "r.txt", f"{FALCON}\n"), label="x",
                     on_progress=said.append)  # fmt: skip
    assert (env / ".ready").read_text().startswith("pip ")
    assert (
        "x: building with pip: pip's configuration sets prefer-binary, which uv cannot take" in said
    )
    assert _imports_falcon(env) == FALCON.split("==")[1]


@pytest.mark.parametrize("builder", ["uv", "pip"])
def test_a_wrong_hash_is_refused(
    builder: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_VAR_BUILDER, builder)
    # no constraint files from the machine's pip.conf (with them, hashed pins build with pip)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    pins = _requirements(tmp_path, "r.txt", f"{FALCON} --hash={WRONG}\n")
    with pytest.raises(EnvironmentError_, match=r"(?i)hash mismatch|do not match the hashes") as e:
        ensure_env(pins, label="hashed")
    assert (f"{ENV_VAR_BUILDER}=pip" in str(e.value)) == (builder == "uv")  # uv's hint
    assert not list((tmp_path / "cache" / "envs").glob("*/.ready"))  # nothing half made
