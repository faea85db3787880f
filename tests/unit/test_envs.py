"""Container environments are shared by every checkout on a machine, whatever venv runs them."""

from __future__ import annotations

import site
import subprocess
import sys
from pathlib import Path

from composer.runners.envs import env_key

REPO = Path(__file__).resolve().parents[2]
PINS = "textblob==0.20.1\n"


def _key_from(python: Path) -> str:
    # the package and its dependencies after the other interpreter's own standard library
    paths = [str(REPO), *site.getsitepackages()]
    code = (
        f"import sys; sys.path += {paths!r}; "
        f"from composer.runners.envs import env_key; print(env_key({PINS!r}))"
    )
    out = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_key_is_the_same_from_another_virtualenv(tmp_path: Path) -> None:
    """A second clone has its own .venv: it must not rebuild spaCy's environment."""
    other = tmp_path / "venv"
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(other)], check=True, timeout=60
    )
    assert _key_from(other / "bin" / "python") == env_key(PINS)


def test_key_follows_the_pins() -> None:
    assert env_key(PINS) != env_key("textblob==0.19.0\n")
    assert env_key(PINS) == env_key(PINS)
