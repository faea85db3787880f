"""One small interface over the `podman` and `docker` command lines.

The product stays engine-neutral: what a particular machine needs (runtime, cgroups, ulimits,
networks, CA bundles) belongs to the engine's own configuration (scripts/setup-podman.sh writes
Podman's, scripts/setup-docker.sh starts a Docker daemon with its own), and flags that cannot live
there come from the environment variables COMPOSER_ENGINE_BUILD_ARGS and COMPOSER_ENGINE_RUN_ARGS.
Every way the two command lines differ is one field of `Dialect` below; the methods consult it
and never test the engine's name.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import tempfile
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

from ..errors import ComposerError, UsageError
from ..render.dockerfile import BASE_IMAGE_ARG, check_image_ref

EngineName = Literal["podman", "docker"]
ENGINES: tuple[str, ...] = get_args(EngineName)
BUILD_ARGS_ENV = "COMPOSER_ENGINE_BUILD_ARGS"
RUN_ARGS_ENV = "COMPOSER_ENGINE_RUN_ARGS"
MODEL_DIR = "/opt/ml/model"
SAGEMAKER_STOP_TIMEOUT = 30
_TAIL_LINES = 40
#: `docker push` prints `TAG: digest: sha256:... size: N` for what it pushed.
_PUSHED_DIGEST = re.compile(r"^\S+: digest: (sha256:[0-9a-f]{64}) size: \d+$", re.MULTILINE)


@dataclass(frozen=True)
class Dialect:
    """How one engine's command line does what both can do: their every difference, in one place."""

    #: How to get the engine where it is missing.
    install_hint: str
    #: Docker is a client of a daemon, which must answer before anything else is tried: the
    #: variable that names its socket, and how to get one. None: no daemon (Podman).
    daemon_env: str | None
    daemon_hint: str
    #: `run --replace`: the engine itself replaces a container of the same name (what a crash
    #: left behind). Without it, the supervisor's command line removes that container first.
    run_replaces: bool
    #: Extra flags of `rm --force`: Podman would first wait 10 s for SIGTERM; Docker kills.
    force_rm_flags: tuple[str, ...]
    #: `--tls-verify=false` on login, push and pull. Docker has no such flag: its daemon decides
    #: per registry (loopback registries are plain HTTP by default; others go in daemon.json).
    tls_flag: bool
    #: `push --digestfile FILE`. Docker pushes a tag (the destination is tagged first, and
    #: untagged after) and prints the digest in its output.
    digest_file: bool
    #: Where `login` keeps credentials: a file (Podman) or a folder of config.json (Docker).
    credentials_env: str
    credentials_is_file: bool


DIALECTS: dict[str, Dialect] = {
    "podman": Dialect(
        install_hint="scripts/setup-podman.sh installs it on Debian",
        daemon_env=None,
        daemon_hint="",
        run_replaces=True,
        force_rm_flags=("--time", "0"),
        tls_flag=True,
        digest_file=True,
        credentials_env="REGISTRY_AUTH_FILE",
        credentials_is_file=True,
    ),
    "docker": Dialect(
        install_hint="scripts/setup-docker.sh installs it on Debian and starts a daemon",
        daemon_env="DOCKER_HOST",
        daemon_hint="on this project's machines `export $(scripts/setup-docker.sh)` does both",
        run_replaces=False,
        force_rm_flags=(),
        tls_flag=False,
        digest_file=False,
        credentials_env="DOCKER_CONFIG",
        credentials_is_file=False,
    ),
}


class EngineError(ComposerError):
    """The engine ran and refused or failed; the message carries the tail of its output."""


class EngineUnreachable(EngineError):
    """The engine's daemon does not answer: set-up, not the command, is what is wrong."""

    exit_code = 2


def _extra_args(variable: str) -> list[str]:
    raw = os.environ.get(variable, "")
    try:
        return shlex.split(raw)
    except ValueError as exc:
        raise UsageError(
            f"{variable}: got {raw!r} ({exc}); allowed is a shell-quoted list of flags, "
            "e.g. '--network=host --volume=/a:/a:ro'"
        ) from exc


def _check_mount_source(path: Path) -> str:
    resolved = path.resolve()
    if not resolved.is_dir():
        raise UsageError(f"model directory: got {str(path)!r}, which is not a directory")
    text = str(resolved)
    if "," in text or ":" in text:
        raise UsageError(
            f"model directory: got {text!r}; the engine's --mount syntax allows no ',' or ':' "
            "in the path"
        )
    return text


def _labels_of(inspect_output: str) -> dict[str, str]:
    labels = json.loads(inspect_output.strip() or "null")
    return {str(k): str(v) for k, v in (labels or {}).items()}


class Engine:
    """A container engine command line; every call is one engine process, nothing is cached."""

    def __init__(self, name: str = "podman", *, binary: str | None = None) -> None:
        if name not in ENGINES:
            raise UsageError(f"engine: got {name!r}; allowed: {', '.join(ENGINES)}")
        self.name: EngineName = "podman" if name == "podman" else "docker"
        self.dialect = DIALECTS[name]
        found = shutil.which(binary or name)
        if found is None:
            raise EngineError(
                f"engine {name!r}: no {binary or name!r} executable on PATH; allowed engines "
                f"are {', '.join(ENGINES)}, installed ({self.dialect.install_hint})"
            )
        self.binary = found
        if self.dialect.daemon_env is not None:
            self._check_daemon(self.dialect.daemon_env)

    def __repr__(self) -> str:
        return f"Engine({self.name!r}, binary={self.binary!r})"

    def _check_daemon(self, variable: str) -> None:
        proc = self._run(["version", "--format", "{{.Server.Version}}"], timeout=60, check=False)
        if proc.returncode == 0:
            return
        host = os.environ.get(variable)
        where = f"at {variable}={host}" if host else f"({variable} is not set)"
        said = next((line.strip() for line in proc.stderr.splitlines() if line.strip()), "")
        raise EngineUnreachable(
            f"{self.name}: no daemon answers {where}"
            + (f" ({self.name} said: {said})" if said else "")
            + f". Start one and set {variable} to its socket: {self.dialect.daemon_hint}"
        )

    def credentials_env(self, folder: Path) -> dict[str, str]:
        """The environment that makes `login` keep credentials in `folder` (never the user's)."""
        path = folder / "auth.json" if self.dialect.credentials_is_file else folder
        return {self.dialect.credentials_env: str(path)}

    # -- plumbing -------------------------------------------------------------------------------

    def _run(
        self,
        args: Sequence[str],
        *,
        stdin: str | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float = 300,
        check: bool = True,
        what: Sequence[str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        try:
            proc = subprocess.run(
                [self.binary, *args],
                input=stdin,
                env={**os.environ, **env} if env else None,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise EngineError(f"{self.name} {args[0]}: no answer within {timeout:g} s") from exc
        if check and proc.returncode != 0:
            raise self._failure(what or args, proc.returncode, proc.stderr or proc.stdout)
        return proc

    def _failure(self, args: Sequence[str], code: int, output: str) -> EngineError:
        tail = "\n".join(output.strip().splitlines()[-_TAIL_LINES:])
        what = " ".join(a for a in args[:2] if not a.startswith("-"))
        return EngineError(f"{self.name} {what} failed (exit {code}):\n{tail}")

    # -- images ---------------------------------------------------------------------------------

    def build(
        self,
        context_dir: Path,
        tag: str,
        *,
        base_image: str | None = None,
        build_args: Mapping[str, str] | None = None,
        on_line: Callable[[str], None] | None = None,
        timeout: float | None = 3600,
    ) -> str:
        """Build `context_dir` as `tag` and return the image id.

        `base_image` sets the Dockerfile's BASE_IMAGE argument, so the base changes without
        re-rendering. Output lines go to `on_line` as they come (the build can take minutes).
        """
        dockerfile = context_dir / "Dockerfile"
        if not dockerfile.is_file():
            raise UsageError(f"build context: got {str(context_dir)!r}, which has no Dockerfile")
        arguments = dict(build_args or {})
        if base_image is not None:
            arguments[BASE_IMAGE_ARG] = check_image_ref(base_image)
        with tempfile.TemporaryDirectory(prefix="composer-build-") as tmp:
            iidfile = Path(tmp) / "iid"
            cmd = [
                self.binary,
                "build",
                "--tag",
                tag,
                "--file",
                str(dockerfile),
                "--iidfile",
                str(iidfile),
            ]
            for key, value in sorted(arguments.items()):
                cmd += ["--build-arg", f"{key}={value}"]
            cmd += [*_extra_args(BUILD_ARGS_ENV), str(context_dir)]
            tail: deque[str] = deque(maxlen=_TAIL_LINES)
            code = self._stream(cmd, tail, on_line, timeout)
            if code != 0:
                raise self._failure(["build", tag], code, "\n".join(tail))
            image_id = iidfile.read_text(encoding="utf-8").strip()
        return image_id.removeprefix("sha256:")

    def _stream(
        self,
        cmd: list[str],
        tail: deque[str],
        on_line: Callable[[str], None] | None,
        timeout: float | None,
    ) -> int:
        with subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        ) as proc:
            assert proc.stdout is not None
            for raw in proc.stdout:
                line = raw.rstrip("\n")
                tail.append(line)
                if on_line is not None:
                    on_line(line)
            try:
                return proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired as exc:
                proc.kill()
                raise EngineError(f"{self.name} {cmd[1]}: not done within {timeout:g} s") from exc

    def image_exists(self, ref: str) -> bool:
        """Whether the engine's local store has `ref` (a tag, id or digest reference)."""
        return (
            self._run(["image", "inspect", "--format", "{{.Id}}", ref], check=False).returncode == 0
        )

    def image_id(self, ref: str) -> str:
        """The local image id of `ref`, without the `sha256:` prefix."""
        out = self._run(["image", "inspect", "--format", "{{.Id}}", ref]).stdout.strip()
        return out.removeprefix("sha256:")

    def inspect_labels(self, ref: str) -> dict[str, str]:
        """The image's labels (SageMaker reads its capabilities from them)."""
        return _labels_of(
            self._run(["image", "inspect", "--format", "{{json .Config.Labels}}", ref]).stdout
        )

    def tag(self, source: str, target: str) -> None:
        self._run(["tag", source, target])

    def remove_image(self, ref: str, *, missing_ok: bool = True) -> None:
        if missing_ok and not self.image_exists(ref):
            return
        self._run(["rmi", ref])

    def login(
        self, registry: str, username: str, password: str, *, tls_verify: bool = True
    ) -> None:
        """Log in with the password on stdin, so it is never on a command line or in a log."""
        args = ["login", "--username", username, "--password-stdin"]
        args += self._tls(tls_verify)
        self._run([*args, registry], stdin=password, timeout=120)

    def push(self, ref: str, destination: str, *, tls_verify: bool = True) -> str:
        """Push local image `ref` to `destination` (registry/repo:tag); returns the digest."""
        if self.dialect.digest_file:
            with tempfile.TemporaryDirectory(prefix="composer-push-") as tmp:
                digestfile = Path(tmp) / "digest"
                flags = [*self._tls(tls_verify), "--digestfile", str(digestfile)]
                self._run(["push", *flags, ref, destination], timeout=3600)
                return digestfile.read_text(encoding="utf-8").strip()
        tagged = ref != destination and not self.image_exists(destination)
        if tagged:
            self.tag(ref, destination)
        try:
            out = self._run(["push", *self._tls(tls_verify), destination], timeout=3600).stdout
        finally:
            if tagged:
                self._run(["rmi", destination], check=False)
        found = _PUSHED_DIGEST.findall(out)
        if not found:
            tail = "\n".join(out.strip().splitlines()[-_TAIL_LINES:])
            raise EngineError(f"{self.name} push {destination}: pushed, but no digest in:\n{tail}")
        return str(found[-1])

    def pull(self, ref: str, *, tls_verify: bool = True) -> str:
        """Pull `ref` and return its local image id."""
        self._run(["pull", *self._tls(tls_verify), ref], timeout=3600)
        return self.image_id(ref)

    def _tls(self, tls_verify: bool) -> list[str]:
        if self.dialect.tls_flag:
            return [f"--tls-verify={'true' if tls_verify else 'false'}"]
        return []

    # -- containers -----------------------------------------------------------------------------

    def _run_args(
        self,
        name: str,
        image: str,
        *,
        detach: bool,
        args: Sequence[str],
        entrypoint: str | None,
        env: Mapping[str, str] | None,
        model_dir: Path | None,
        host_network: bool,
        labels: Mapping[str, str] | None,
    ) -> list[str]:
        """The `run` arguments: values of `env` stay in the engine's environment (`--env NAME`)."""
        cmd = ["run", "--detach" if detach else "--rm", "--name", name]
        if not detach and self.dialect.run_replaces:
            cmd.append("--replace")
        if entrypoint is not None:
            cmd += ["--entrypoint", entrypoint]
        if host_network:
            cmd += ["--network", "host"]
        for key in sorted(env or {}):
            cmd += ["--env", key]
        for key, value in sorted((labels or {}).items()):
            cmd += ["--label", f"{key}={value}"]
        if model_dir is not None:
            source = _check_mount_source(model_dir)
            cmd += ["--mount", f"type=bind,source={source},target={MODEL_DIR},readonly"]
        return [*cmd, *_extra_args(RUN_ARGS_ENV), image, *args]

    def run(
        self,
        name: str,
        image: str,
        *,
        args: Sequence[str] = ("serve",),
        entrypoint: str | None = None,
        env: Mapping[str, str] | None = None,
        model_dir: Path | None = None,
        host_network: bool = True,
        labels: Mapping[str, str] | None = None,
    ) -> str:
        """Start a long-running container detached, as SageMaker would; returns its id.

        Environment values travel in the engine's own environment (`--env NAME`), never on its
        command line. `model_dir` is mounted read-only at /opt/ml/model. Ulimits and the like
        come from the engine's configuration. `entrypoint` replaces the image's executable
        (diagnostics only; SageMaker never does).
        """
        cmd = self._run_args(
            name,
            image,
            detach=True,
            args=args,
            entrypoint=entrypoint,
            env=env,
            model_dir=model_dir,
            host_network=host_network,
            labels=labels,
        )
        out = self._run(cmd, env=env, what=["run", name]).stdout.strip()
        return out.splitlines()[-1] if out else name

    def run_argv(
        self,
        name: str,
        image: str,
        *,
        args: Sequence[str] = ("serve",),
        env: Mapping[str, str] | None = None,
        model_dir: Path | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> tuple[list[str], dict[str, str]]:
        """Command line and environment of an attached, self-removing run (for supervisors).

        As with `run`, values travel in the engine's environment (`--env NAME`), never on the
        command line. A restart under the same name replaces what a crash left behind: by the
        engine's `--replace`, or by a forced `rm` of that name just before the `run`.
        """
        cmd = [
            self.binary,
            *self._run_args(
                name,
                image,
                detach=False,
                args=args,
                entrypoint=None,
                env=env,
                model_dir=model_dir,
                host_network=True,
                labels=labels,
            ),
        ]
        if not self.dialect.run_replaces:
            flags = " ".join(("--force", *self.dialect.force_rm_flags))
            # sh -c SCRIPT NAME ENGINE run ...: $0 is the name, "$@" the engine's command line.
            cmd = ["/bin/sh", "-c", f'"$1" rm {flags} "$0" >/dev/null 2>&1; exec "$@"', name, *cmd]
        return cmd, {**os.environ, **(env or {})}

    def stop_argv(self, name: str, timeout: int = SAGEMAKER_STOP_TIMEOUT) -> list[str]:
        """SIGTERM, then SIGKILL after `timeout` seconds, as a command line for supervisors."""
        return [self.binary, "stop", "--time", str(timeout), name]

    def container_exists(self, name: str) -> bool:
        return self._run(["container", "inspect", name], check=False).returncode == 0

    def _inspect(self, name: str, template: str) -> str | None:
        proc = self._run(["container", "inspect", "--format", template, name], check=False)
        return proc.stdout.strip() if proc.returncode == 0 else None

    def container_status(self, name: str) -> str | None:
        """`running`, `exited`, ... or None when there is no such container."""
        return self._inspect(name, "{{.State.Status}}")

    def container_pid(self, name: str) -> int | None:
        """The host pid of the container's first process; None when it is not running."""
        out = self._inspect(name, "{{.State.Pid}}")
        return int(out) if out and out.isdigit() and int(out) > 0 else None

    def container_exit_code(self, name: str) -> int | None:
        """The exit status of a container that ran; None when there is no such container."""
        out = self._inspect(name, "{{.State.ExitCode}}")
        return int(out) if out is not None and out.lstrip("-").isdigit() else None

    def containers_labelled(self, key: str, value: str | None = None) -> list[str]:
        """Names of the containers (running or not) that carry label `key=value` (or label
        `key` with any value)."""
        wanted = key if value is None else f"{key}={value}"
        out = self._run(
            ["ps", "--all", "--filter", f"label={wanted}", "--format", "{{.Names}}"]
        ).stdout
        return [name for name in out.split() if name]

    def container_labels(self, name: str) -> dict[str, str] | None:
        """A container's labels; None when it no longer exists."""
        out = self._inspect(name, "{{json .Config.Labels}}")
        return None if out is None else _labels_of(out)

    def stop(self, name: str, timeout: int = SAGEMAKER_STOP_TIMEOUT) -> None:
        """SIGTERM, then SIGKILL after `timeout` seconds, as SageMaker stops containers."""
        self._run(["stop", "--time", str(timeout), name], timeout=timeout + 60)

    def rm(self, name: str, *, force: bool = False, missing_ok: bool = True) -> None:
        """Remove a container; with `force` a running one is killed first (SIGKILL, no wait)."""
        if missing_ok and not self.container_exists(name):
            return
        flags = ["--force", *self.dialect.force_rm_flags] if force else []
        self._run(["rm", *flags, name])

    def logs(self, name: str) -> str:
        """Everything the container wrote so far, stdout and stderr interleaved."""
        proc = subprocess.run(
            [self.binary, "logs", name],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=60,
            check=False,
        )
        if proc.returncode != 0:
            raise self._failure(["logs", name], proc.returncode, proc.stdout)
        return proc.stdout
