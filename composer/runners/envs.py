"""One Python environment per container, built from its pinned requirements and cached.

Environments are keyed by the hash of requirements.txt and the base interpreter (not the
virtualenv `sm-compose` runs from: `python -m venv` always builds on the base one), so a second
`up` of an unchanged pipeline starts in seconds, from any clone, and two containers with the same
pins share one.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from ..cache import cache_dir
from ..errors import ComposerError
from ..storage import atomic_dir


class EnvironmentError_(ComposerError):
    """pip could not build a container's environment."""


def env_key(requirements: str, base: str = sys.base_prefix) -> str:
    version = ".".join(map(str, sys.version_info[:3]))
    h = hashlib.sha256(f"{os.path.realpath(base)}\0{version}\0{requirements}".encode())
    return h.hexdigest()[:16]


def python_of(env: Path) -> Path:
    return env / "bin" / "python"


def ensure_env(
    requirements_file: Path,
    *,
    label: str,
    on_progress: Callable[[str], None] | None = None,
) -> Path:
    """Return a ready environment for these requirements, building it once if missing."""
    text = requirements_file.read_text(encoding="utf-8")
    root = cache_dir() / "envs"
    root.mkdir(parents=True, exist_ok=True)
    env = root / env_key(text)
    ready = env / ".ready"
    if ready.is_file():
        return env
    with open(root / f"{env.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if ready.is_file():  # built by another process while we waited
            return env
        say = on_progress or (lambda _msg: None)
        started = time.monotonic()
        with atomic_dir(env) as tmp:
            say(f"{label}: creating environment")
            _run([sys.executable, "-m", "venv", str(tmp)], label, on_progress)
            say(f"{label}: installing requirements")
            _run(
                [
                    str(python_of(tmp)),
                    "-m",
                    "pip",
                    "install",
                    "--disable-pip-version-check",
                    "--no-input",
                    "--progress-bar",
                    "off",
                    "-r",
                    str(requirements_file),
                ],
                label,
                on_progress,
            )
            (tmp / "requirements.txt").write_text(text, encoding="utf-8")
            (tmp / ready.name).write_text(f"{time.monotonic() - started:.1f}s\n", encoding="utf-8")
        say(f"{label}: environment ready in {time.monotonic() - started:.0f}s")
    return env


def _run(argv: list[str], label: str, on_progress: Callable[[str], None] | None) -> None:
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
    )
    tail: list[str] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        line = line.rstrip()
        tail = [*tail[-19:], line]
        if on_progress and line.startswith(("Collecting", "Installing", "Successfully")):
            on_progress(f"{label}: {line[:100]}")
    if proc.wait() != 0:
        shown = "\n".join(f"  {t}" for t in tail)
        raise EnvironmentError_(
            f"{label}: building the environment failed ({' '.join(argv[-3:])}):\n{shown}"
        )
