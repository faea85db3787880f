"""One Python environment per container, built from its pinned requirements and cached.

Environments are keyed by the hash of requirements.txt and the base interpreter (not the
virtualenv `sm-compose` runs from: an environment always builds on the base one), so a second
`up` of an unchanged pipeline starts in seconds, from any clone, and two containers with the same
pins share one.

They are built with uv (a dependency of sm-compose) from where pip's configuration says
(runners/pipconfig.py), and with pip only where uv is not usable: no uv binary, a pip setting uv
has no equivalent for, or COMPOSER_ENV_BUILDER=pip. The builder is not part of the key: both
install the same pins (and check the same hashes) into a plain venv on the same interpreter, so
an environment pip built earlier serves as it is; `.ready` in it says which one built it.
`ensure_envs` builds those of several containers at once, with one progress line for all.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from ..cache import cache_dir
from ..errors import ComposerError, UsageError
from ..storage import atomic_dir
from .pipconfig import pip_settings, uv_options

#: `uv` (the default: pip where uv is not usable) or `pip`.
ENV_VAR_BUILDER = "COMPOSER_ENV_BUILDER"

#: The lines of a build's output worth showing while it runs.
_SHOWN = ("Collecting", "Installing", "Successfully", "Resolved", "Prepared", "Installed")


class EnvironmentError_(ComposerError):
    """uv or pip could not build a container's environment."""


def env_key(requirements: str, base: str = sys.base_prefix) -> str:
    version = ".".join(map(str, sys.version_info[:3]))
    h = hashlib.sha256(f"{os.path.realpath(base)}\0{version}\0{requirements}".encode())
    return h.hexdigest()[:16]


def python_of(env: Path) -> Path:
    return env / "bin" / "python"


@dataclass(frozen=True)
class Builder:
    """What builds environments: uv at `uv` with its options, or pip (and why pip)."""

    uv: Path | None
    args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    #: Why pip builds, when it does (said once on the progress display).
    reason: str = ""

    @property
    def name(self) -> str:
        return "uv" if self.uv is not None else "pip"


def find_uv() -> Path | None:
    """The uv installed with sm-compose (the `uv` package's binary), else one on PATH."""
    try:
        from uv import find_uv_bin

        return Path(find_uv_bin())
    except (ImportError, FileNotFoundError):
        import shutil

        found = shutil.which("uv")
        return Path(found) if found else None


def choose_builder(uv: Path | None, environ: dict[str, str] | None = None) -> Builder:
    """uv unless it is not usable here; then pip, with the reason."""
    environ = dict(os.environ if environ is None else environ)
    wanted = environ.get(ENV_VAR_BUILDER, "uv").strip().lower() or "uv"
    if wanted not in ("uv", "pip"):
        raise UsageError(f"{ENV_VAR_BUILDER}: got {wanted!r}; allowed are uv and pip")
    if wanted == "pip":
        return Builder(None, reason=f"{ENV_VAR_BUILDER}=pip")
    if uv is None:
        return Builder(None, reason="uv is not installed (pip install uv, or put uv on PATH)")
    options = uv_options(pip_settings(environ), environ)
    if options.unsupported:
        keys = ", ".join(sorted(options.unsupported))
        return Builder(None, reason=f"pip's configuration sets {keys}, which uv cannot take")
    return Builder(uv, tuple(options.args), tuple(sorted(options.env.items())))


def ensure_env(
    requirements_file: Path,
    *,
    label: str,
    on_progress: Callable[[str], None] | None = None,
    builder: Builder | None = None,
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
        if ready.is_file():  # built by another process (or thread) while we waited
            return env
        say = on_progress or (lambda _msg: None)
        builder = _for_pins(builder or choose_builder(find_uv()), text)
        if builder.reason:
            say(f"{label}: building with pip: {builder.reason}")
        started = time.monotonic()
        with atomic_dir(env) as tmp:
            say(f"{label}: creating environment")
            for step, argv in enumerate(_commands(builder, tmp, requirements_file, text)):
                if step == 1:
                    say(f"{label}: installing requirements ({builder.name})")
                _run(argv, label, on_progress, builder)
            (tmp / "requirements.txt").write_text(text, encoding="utf-8")
            took = time.monotonic() - started
            (tmp / ready.name).write_text(f"{builder.name} {took:.1f}s\n", encoding="utf-8")
        say(f"{label}: environment ready in {time.monotonic() - started:.0f}s")
    return env


def _for_pins(builder: Builder, text: str) -> Builder:
    """pip for hash-checked pins under a constraints file: uv's --require-hashes (pip's rule:
    every requirement hashed once any is) refuses constraints that are ranges; pip takes them."""
    if builder.uv is not None and "--hash" in text and "--constraint" in builder.args:
        return Builder(None, reason="hash-checked pins with pip's constraint files")
    return builder


def _commands(builder: Builder, env: Path, requirements: Path, text: str) -> list[list[str]]:
    """Make the venv, then install the pins into it (hash-checked where hashes are given)."""
    if builder.uv is None:
        return [
            [sys.executable, "-m", "venv", str(env)],
            [
                str(python_of(env)),
                "-m",
                "pip",
                "install",
                "--disable-pip-version-check",
                "--no-input",
                "--progress-bar",
                "off",
                "-r",
                str(requirements),
            ],
        ]
    uv = str(builder.uv)
    # pip checks every requirement's hash once any has one; uv only those given, unless told.
    hashes = ["--require-hashes"] if "--hash" in text else []
    return [
        [uv, "venv", "--quiet", "--no-project", "--python", sys.executable, str(env)],
        [
            uv,
            "pip",
            "install",
            "--no-progress",
            "--python",
            str(python_of(env)),
            *builder.args,
            *hashes,
            "-r",
            str(requirements),
        ],
    ]


def ensure_envs(
    requests: Sequence[tuple[Path, str]],
    on_progress: Callable[[str], None] | None = None,
) -> list[Path]:
    """`ensure_env` for each (requirements file, label), built at the same time.

    Progress is one line for all of them: each label with its latest step.
    """
    if not requests:
        return []
    builder = choose_builder(find_uv())
    board = _Board([label for _, label in requests], on_progress)
    with ThreadPoolExecutor(max_workers=len(requests)) as pool:
        futures = [
            pool.submit(ensure_env, path, label=label, on_progress=board.say, builder=builder)
            for path, label in requests
        ]
        return [f.result() for f in futures]


class _Board:
    """The latest step of each build, said as one line (only for builds that said anything)."""

    def __init__(self, labels: list[str], out: Callable[[str], None] | None) -> None:
        self._steps = dict.fromkeys(labels, "")
        self._out = out
        self._lock = threading.Lock()

    def say(self, message: str) -> None:
        if self._out is None:
            return
        label, _, step = message.partition(": ")
        with self._lock:
            if label not in self._steps:
                self._out(message)
                return
            self._steps[label] = step
            self._out(" · ".join(f"{k}: {v}" for k, v in self._steps.items() if v))


def _run(
    argv: list[str],
    label: str,
    on_progress: Callable[[str], None] | None,
    builder: Builder,
) -> None:
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
        env={**os.environ, **dict(builder.env)},
    )
    tail: list[str] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        line = line.rstrip()
        tail = [*tail[-19:], line]
        if on_progress and line.startswith(_SHOWN):
            on_progress(f"{label}: {line[:100]}")
    if proc.wait() != 0:
        shown = "\n".join(f"  {t}" for t in tail)
        hint = f" (to build with pip instead: {ENV_VAR_BUILDER}=pip)" if builder.uv else ""
        raise EnvironmentError_(
            f"{label}: building the environment failed ({' '.join(argv[-3:])}){hint}:\n{shown}"
        )
