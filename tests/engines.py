"""The OCI engines the engine tests run against, set up as CI sets them up, and a local registry.

Plain helpers: tests/conftest.py makes the fixtures of them (`engine`, parametrized by engine and
set up once per session; `registry`; `nlp_images`). `podman_engine()` runs
scripts/setup-podman.sh. `docker_engine()` runs scripts/setup-docker.sh, which starts a daemon of
the tests' own on a socket of its own, and stops that daemon at the end if it started it. Each
skips, saying why, only when its engine cannot be installed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from composer.runners.contract import free_port
from composer.runners.engine import ENGINES, Engine, EngineError

REPO = Path(__file__).resolve().parents[1]
SETUP = {name: REPO / "scripts" / f"setup-{name}.sh" for name in ENGINES}
#: Machines without Docker Hub build FROM the debootstrap image that scripts/setup-*.sh make.
BASE_IMAGE = os.environ.get("COMPOSER_BASE_IMAGE", "localhost/composer-base:bookworm")
ENGINE_ENV = {"COMPOSER_BASE_IMAGE": BASE_IMAGE}


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`sm-compose ARGS` as a user runs it, building FROM BASE_IMAGE."""
    return subprocess.run(
        [sys.executable, "-m", "composer", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **ENGINE_ENV, **(env or {})},
        timeout=1800,
    )


def tail(text: str, lines: int = 30) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def run_setup(script: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """scripts/setup-ENGINE.sh ARGS; a set-up run (no ARGS) prints how long it took."""
    started = time.monotonic()
    proc = subprocess.run(
        [str(script), *args], capture_output=True, text=True, timeout=1800, check=False
    )
    if not args:
        print(f"\n[engine] {script.name} took {time.monotonic() - started:.1f} s")
    return proc


def podman_engine() -> Iterator[Engine]:
    if os.geteuid() == 0:
        proc = run_setup(SETUP["podman"])
        if proc.returncode != 0:
            if shutil.which("podman") is None:
                pytest.skip(f"podman cannot be installed here:\n{tail(proc.stderr)}")
            pytest.fail(f"scripts/setup-podman.sh failed:\n{tail(proc.stderr)}")
    elif shutil.which("podman") is None:
        pytest.skip(
            "podman is not installed and installing it needs root (scripts/setup-podman.sh)"
        )
    try:
        podman = Engine("podman")
    except EngineError as exc:
        pytest.skip(f"podman cannot be used: {exc}")
    yield podman


def docker_engine(config: Path) -> Iterator[Engine]:
    """The tests' own daemon: started by the script (if not running), stopped at the end.
    Registry logins go to `config` (DOCKER_CONFIG), never to ~/.docker."""
    script = SETUP["docker"]
    env = {"DOCKER_CONFIG": str(config)}
    started_here = False
    if os.geteuid() == 0:
        started_here = run_setup(script, "--status").returncode != 0
        proc = run_setup(script)
        if proc.returncode != 0:
            if shutil.which("dockerd") is None:
                pytest.skip(f"docker cannot be installed here:\n{tail(proc.stderr)}")
            pytest.fail(f"scripts/setup-docker.sh failed:\n{tail(proc.stderr)}")
        # DOCKER_HOST of its socket, and the build flags its daemon needs (no bridge network).
        env.update(line.split("=", 1) for line in proc.stdout.splitlines() if "=" in line)
    elif shutil.which("docker") is None:
        pytest.skip(
            "docker is not installed and installing it needs root (scripts/setup-docker.sh)"
        )
    try:
        with pytest.MonkeyPatch.context() as patch:
            for key, value in env.items():
                patch.setenv(key, value)
            try:
                docker = Engine("docker")
            except EngineError as exc:
                pytest.skip(f"docker cannot be used: {exc}")
            yield docker
    finally:
        if started_here:
            run_setup(script, "--stop")


@contextlib.contextmanager
def local_registry(folder: Path, htpasswd: Path | None = None) -> Iterator[str]:
    """Debian's docker-registry (distribution) on a free loopback port, storage and its log
    (registry.log) in `folder`; with `htpasswd`, pushes need a login. Yields HOST:PORT."""
    binary = shutil.which("docker-registry")
    if binary is None:
        pytest.skip("docker-registry is not installed (scripts/setup-podman.sh or -docker.sh do)")
    port = free_port()
    auth = ""
    if htpasswd is not None:
        auth = f"auth:\n  htpasswd:\n    realm: composer-test\n    path: {htpasswd}\n"
    config = folder / "registry.yml"
    config.write_text(
        textwrap.dedent(
            f"""\
            version: 0.1
            log:
              level: warn
            storage:
              filesystem:
                rootdirectory: {folder / "storage"}
            http:
              addr: 127.0.0.1:{port}
            """
        )
        + auth,
        encoding="utf-8",
    )
    log_path = folder / "registry.log"
    with log_path.open("wb") as log:
        # The registry reads REGISTRY_* variables as configuration, and podman's
        # REGISTRY_AUTH_FILE would be taken for `auth.file`: give it none of them.
        env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
        proc = subprocess.Popen(
            [binary, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT, env=env
        )
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=2):
                        break
                except urllib.error.HTTPError:
                    break  # 401 when auth is on: it answers
                except (urllib.error.URLError, ConnectionError):
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"registry did not start: {log_path.read_text()}")
                time.sleep(0.1)
            yield f"127.0.0.1:{port}"
        finally:
            proc.terminate()
            proc.wait(timeout=30)
