"""pip's configuration (its files and PIP_* variables) as uv's options, for building environments.

uv reads no pip.conf: a machine whose packages come through a mirror, an extra index, a
find-links folder, a constraints file or a TLS-inspecting proxy (its certificate) says so to pip.
`uv_options` gives uv the same, so an environment built with uv comes from where pip's would.
What uv has no equivalent for is named, and the caller builds with pip instead.

Standard library only, and no import from the package: scripts/config runs this file as a
script (`--shell`) before the project is installed, for scripts/setup.sh's own uv.
"""

from __future__ import annotations

import configparser
import os
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path

#: pip's list options: several values, separated by white space.
_LISTS = {"extra-index-url", "find-links", "constraint", "trusted-host", "no-binary", "only-binary"}

#: Settings that change how pip talks or what it prints, not what it installs.
_NO_EFFECT = {
    "disable-pip-version-check",
    "no-input",
    "progress-bar",
    "quiet",
    "verbose",
    "no-color",
    "retries",
    "cache-dir",
    "no-cache-dir",
    "log",
    "log-file",
    "no-warn-script-location",
    "no-warn-conflicts",
    "root-user-action",
    "break-system-packages",
    "no-python-version-warning",
    "exists-action",
    "require-virtualenv",
    "compile",
    "no-compile",
    "isolated",
    "python",
}


@dataclass
class UvOptions:
    """uv's arguments and environment for what pip's configuration says."""

    #: Where packages come from (what `uv venv` takes too).
    index_args: list[str] = field(default_factory=list)
    #: What `uv pip install` takes besides.
    install_args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    #: pip settings uv has no equivalent for: build with pip when there is any.
    unsupported: list[str] = field(default_factory=list)

    @property
    def args(self) -> list[str]:
        return [*self.index_args, *self.install_args]


def _key(name: str) -> str:
    return name.strip().lower().lstrip("-").replace("_", "-")


def config_files(environ: dict[str, str]) -> list[Path]:
    """pip's configuration files in the order pip reads them (later ones win)."""
    explicit = environ.get("PIP_CONFIG_FILE")
    if explicit == os.devnull:
        return []
    dirs = environ.get("XDG_CONFIG_DIRS") or "/etc/xdg"
    files = [Path(d) / "pip" / "pip.conf" for d in dirs.split(":") if d]
    files.append(Path("/etc/pip.conf"))
    home = Path(environ.get("HOME") or Path.home())
    if not (explicit and Path(explicit).exists()):
        files.append(home / ".pip" / "pip.conf")
        files.append(Path(environ.get("XDG_CONFIG_HOME") or home / ".config") / "pip" / "pip.conf")
    if explicit:
        files.append(Path(explicit))
    return files


def pip_settings(environ: dict[str, str] | None = None) -> dict[str, str]:
    """What `pip install` would take from its files ([global], then [install]) and PIP_*."""
    environ = dict(os.environ if environ is None else environ)
    found: dict[str, str] = {}
    for path in config_files(environ):
        parser = configparser.RawConfigParser()
        try:
            parser.read(path, encoding="utf-8")
        except (OSError, configparser.Error):
            continue
        for section in ("global", "install"):
            if parser.has_section(section):
                found.update({_key(k): v for k, v in parser.items(section)})
    for name, value in environ.items():
        if name.startswith("PIP_") and name != "PIP_CONFIG_FILE":
            found[_key(name[4:])] = value
    return found


def _true(value: str) -> bool:
    return value.strip().lower() in ("1", "yes", "true", "on")


def uv_options(settings: dict[str, str], environ: dict[str, str] | None = None) -> UvOptions:
    """uv's equivalents of pip's settings. A UV_* variable the user set is left to win."""
    environ = dict(os.environ if environ is None else environ)
    out = UvOptions()
    index, install = out.index_args, out.install_args
    # pip merges every index and picks the best version over all of them; uv's default takes
    # the first index that has the package at all.
    if "UV_INDEX_STRATEGY" not in environ:
        index += ["--index-strategy", "unsafe-best-match"]
    for key, raw in settings.items():
        values = raw.split() if key in _LISTS else [raw.strip()]
        if key in _NO_EFFECT:
            continue
        flag = {"trusted-host": "--allow-insecure-host"}.get(key, f"--{key}")
        if key in ("index-url", "keyring-provider"):
            index += [flag, values[0]]
        elif key in ("extra-index-url", "find-links", "trusted-host"):
            index += [a for v in values for a in (flag, v)]
        elif key in ("constraint", "no-binary", "only-binary"):
            install += [a for v in values for a in (flag, v)]
        elif key == "no-index":
            index += [flag] if _true(raw) else []
        elif key in ("pre", "require-hashes", "no-build-isolation"):
            install += [{"pre": "--prerelease=allow"}.get(key, flag)] if _true(raw) else []
        elif key == "cert":
            out.env["SSL_CERT_FILE"] = values[0]
        elif key == "client-cert":
            out.env["SSL_CLIENT_CERT"] = values[0]
        elif key in ("timeout", "default-timeout"):
            out.env["UV_HTTP_TIMEOUT"] = values[0]
        elif key == "proxy":
            out.env.update(HTTP_PROXY=values[0], HTTPS_PROXY=values[0])
        else:
            out.unsupported.append(key)
    # pip (24.2 on) trusts the system's certificate store; uv's equivalent is --system-certs.
    if not ({"SSL_CERT_FILE", "UV_SYSTEM_CERTS", "UV_NATIVE_TLS"} & (set(environ) | set(out.env))):
        out.env["UV_SYSTEM_CERTS"] = "1"
    out.env = {k: v for k, v in out.env.items() if k not in environ or k.startswith("SSL_")}
    return out


def _shell() -> str:
    """For scripts/config: UV_ARGS (and UV_INDEX_ARGS, the part `uv venv` takes) as bash
    arrays, the environment as exports."""
    options = uv_options(pip_settings())
    lines = [
        f"UV_ARGS=({shlex.join(options.args)})",
        f"UV_INDEX_ARGS=({shlex.join(options.index_args)})",
    ]
    lines += [f"export {k}={shlex.quote(v)}" for k, v in options.env.items()]
    if options.unsupported:
        lines.append(f"UV_UNSUPPORTED={shlex.quote(' '.join(options.unsupported))}")
    return "\n".join(lines)


if __name__ == "__main__":
    if sys.argv[1:] != ["--shell"]:
        print("usage: pipconfig.py --shell", file=sys.stderr)
        sys.exit(2)
    print(_shell())
