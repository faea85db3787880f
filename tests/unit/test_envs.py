"""Container environments are shared by every checkout on a machine, whatever venv runs them."""

from __future__ import annotations

import os
import site
import subprocess
import sys
from pathlib import Path

import pytest

from composer.errors import UsageError
from composer.runners.envs import ENV_VAR_BUILDER, choose_builder, env_key
from composer.runners.pipconfig import pip_settings, uv_options

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


# --- which builder, and pip's configuration as uv's options -------------------------------


def _pip_conf(folder: Path, text: str) -> dict[str, str]:
    """An environment whose only pip configuration is this file (no machine or user files)."""
    conf = folder / "pip.conf"
    conf.write_text(text)
    return {
        "HOME": str(folder),
        "XDG_CONFIG_DIRS": str(folder / "none"),
        "PIP_CONFIG_FILE": str(conf),
    }


def test_pip_settings_files_then_install_section_then_variables(tmp_path: Path) -> None:
    environ = _pip_conf(
        tmp_path,
        "[global]\nindex-url = https://mirror.example/simple\ntimeout = 10\n"
        "[install]\nfind_links = /wheels\n  /more\n[freeze]\ntimeout = 99\n",
    )
    environ["PIP_TIMEOUT"] = "30"
    settings = pip_settings(environ)
    assert {k: settings[k] for k in ("index-url", "timeout")} == {
        "index-url": "https://mirror.example/simple",
        "timeout": "30",
    }
    assert settings["find-links"].split() == ["/wheels", "/more"]


def test_pip_settings_none_with_devnull() -> None:
    assert pip_settings({"PIP_CONFIG_FILE": os.devnull, "HOME": "/nonexistent"}) == {}


def test_uv_gets_what_pip_is_told(tmp_path: Path) -> None:
    settings = {
        "index-url": "https://mirror.example/simple",
        "extra-index-url": "file:///opt/a file:///opt/b",
        "find-links": "/wheels",
        "constraint": "/etc/c.txt",
        "trusted-host": "mirror.example",
        "cert": "/etc/ssl/proxy.pem",
        "disable-pip-version-check": "1",
    }
    options = uv_options(settings, {})
    assert options.args == [
        "--index-strategy", "unsafe-best-match",
        "--index-url", "https://mirror.example/simple",
        "--extra-index-url", "file:///opt/a", "--extra-index-url", "file:///opt/b",
        "--find-links", "/wheels",
        "--allow-insecure-host", "mirror.example",
        "--constraint", "/etc/c.txt",
    ]  # fmt: skip
    assert "--constraint" not in options.index_args  # `uv venv` takes no constraints
    assert options.env == {"SSL_CERT_FILE": "/etc/ssl/proxy.pem"}
    assert options.unsupported == []


def test_uv_settings_of_the_user_win() -> None:
    options = uv_options(
        {"timeout": "5"}, {"UV_INDEX_STRATEGY": "first-index", "UV_HTTP_TIMEOUT": "9"}
    )
    assert "--index-strategy" not in options.args
    assert "UV_HTTP_TIMEOUT" not in options.env


def test_without_a_certificate_uv_trusts_the_system_store_as_pip_does() -> None:
    assert uv_options({}, {}).env == {"UV_SYSTEM_CERTS": "1"}
    assert "UV_SYSTEM_CERTS" not in uv_options({}, {"SSL_CERT_FILE": "/x.pem"}).env


def test_pip_where_uv_is_not_usable(tmp_path: Path) -> None:
    uv = Path("/usr/bin/uv")
    assert choose_builder(uv, _pip_conf(tmp_path, "")).name == "uv"
    forced = choose_builder(uv, {**_pip_conf(tmp_path, ""), ENV_VAR_BUILDER: "pip"})
    assert (forced.name, forced.reason) == ("pip", f"{ENV_VAR_BUILDER}=pip")
    assert "uv is not installed" in choose_builder(None, _pip_conf(tmp_path, "")).reason
    odd = choose_builder(uv, _pip_conf(tmp_path, "[install]\nprefer-binary = true\n"))
    assert odd.name == "pip"
    assert "prefer-binary" in odd.reason


def test_builder_names_what_is_allowed(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="got 'conda'; allowed are uv and pip"):
        choose_builder(None, {**_pip_conf(tmp_path, ""), ENV_VAR_BUILDER: "conda"})
