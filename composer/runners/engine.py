"""One small interface over the `podman` and `docker` command lines.

Only flags both engines accept are used, so the product stays engine-neutral. What a particular
machine needs (runtime, cgroups, ulimits, networks, CA bundles) belongs to the engine's own
configuration (scripts/setup-podman.sh writes Podman's); flags that cannot live there come from
the environment variables COMPOSER_ENGINE_BUILD_ARGS and COMPOSER_ENGINE_RUN_ARGS.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import tempfile
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
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


class EngineError(ComposerError):
    """The engine ran and refused or failed; the message carries the tail of its output."""


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


class Engine:
    """A container engine command line; every call is one engine process, nothing is cached."""

    def __init__(self, name: str = "podman", *, binary: str | None = None) -> None:
        if name not in ENGINES:
            raise UsageError(f"engine: got {name!r}; allowed: {', '.join(ENGINES)}")
        self.name: EngineName = "podman" if name == "podman" else "docker"
        found = shutil.which(binary or name)
        if found is None:
            hint = "scripts/setup-podman.sh installs it on Debian" if name == "podman" else ""
            raise EngineError(
                f"engine {name!r}: no {binary or name!r} executable on PATH; allowed engines "
                f"are {', '.join(ENGINES)}, installed" + (f" ({hint})" if hint else "")
            )
        self.binary = found

    def __repr__(self) -> str:
        return f"Engine({self.name!r}, binary={self.binary!r})"

    # -- plumbing -------------------------------------------------------------------------------

    def _run(
        self,
        args: Sequence[str],
        *,
        stdin: str | None = None,
        timeout: float | None = 300,
        check: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        cmd = [self.binary, *args]
        try:
            proc = subprocess.run(
                cmd,
                input=stdin,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise EngineError(f"{self.name} {args[0]}: no answer within {timeout:g} s") from exc
        if check and proc.returncode != 0:
            raise self._failure(args, proc.returncode, proc.stderr or proc.stdout)
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
        out = self._run(["image", "inspect", "--format", "{{json .Config.Labels}}", ref]).stdout
        labels = json.loads(out.strip() or "null")
        return {str(k): str(v) for k, v in (labels or {}).items()}

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
        if self.name == "podman":
            with tempfile.TemporaryDirectory(prefix="composer-push-") as tmp:
                digestfile = Path(tmp) / "digest"
                self._run(
                    [
                        "push",
                        *self._tls(tls_verify),
                        "--digestfile",
                        str(digestfile),
                        ref,
                        destination,
                    ],
                    timeout=3600,
                )
                return digestfile.read_text(encoding="utf-8").strip()
        # Docker pushes by name only and trusts loopback registries without TLS by itself.
        if ref != destination:
            self.tag(ref, destination)
        self._run(["push", destination], timeout=3600)
        repo = (
            destination.rsplit(":", 1)[0] if ":" in destination.rsplit("/", 1)[-1] else destination
        )
        out = self._run(["image", "inspect", "--format", "{{json .RepoDigests}}", destination])
        for item in json.loads(out.stdout.strip() or "[]"):
            name, _, digest = str(item).partition("@")
            if name == repo and digest:
                return digest
        raise EngineError(f"docker push {destination}: pushed, but no digest for {repo!r} found")

    def pull(self, ref: str, *, tls_verify: bool = True) -> str:
        """Pull `ref` and return its local image id."""
        self._run(["pull", *self._tls(tls_verify), ref], timeout=3600)
        return self.image_id(ref)

    def _tls(self, tls_verify: bool) -> list[str]:
        if self.name == "podman":
            return [f"--tls-verify={'true' if tls_verify else 'false'}"]
        return []

    # -- containers -----------------------------------------------------------------------------

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
        cmd = ["run", "--detach", "--name", name]
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
        cmd += [*_extra_args(RUN_ARGS_ENV), image, *args]
        child_env = {**os.environ, **(env or {})}
        try:
            proc = subprocess.run(
                [self.binary, *cmd],
                env=child_env,
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise EngineError(f"{self.name} run {name}: no answer within 300 s") from exc
        if proc.returncode != 0:
            raise self._failure(["run", name], proc.returncode, proc.stderr or proc.stdout)
        return proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else name

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
        command line. A restart under the same name replaces what a crash left behind.
        """
        cmd = [self.binary, "run", "--rm", "--name", name, "--network", "host"]
        if self.name == "podman":
            cmd.append("--replace")
        for key in sorted(env or {}):
            cmd += ["--env", key]
        for key, value in sorted((labels or {}).items()):
            cmd += ["--label", f"{key}={value}"]
        if model_dir is not None:
            source = _check_mount_source(model_dir)
            cmd += ["--mount", f"type=bind,source={source},target={MODEL_DIR},readonly"]
        cmd += [*_extra_args(RUN_ARGS_ENV), image, *args]
        return cmd, {**os.environ, **(env or {})}

    def stop_argv(self, name: str, timeout: int = SAGEMAKER_STOP_TIMEOUT) -> list[str]:
        """SIGTERM, then SIGKILL after `timeout` seconds, as a command line for supervisors."""
        return [self.binary, "stop", "--time", str(timeout), name]

    def container_exists(self, name: str) -> bool:
        return self._run(["container", "inspect", name], check=False).returncode == 0

    def container_status(self, name: str) -> str | None:
        """`running`, `exited`, ... or None when there is no such container."""
        proc = self._run(
            ["container", "inspect", "--format", "{{.State.Status}}", name], check=False
        )
        return proc.stdout.strip() if proc.returncode == 0 else None

    def containers_labelled(self, key: str, value: str) -> list[str]:
        """Names of the containers (running or not) that carry label `key=value`."""
        out = self._run(
            ["ps", "--all", "--filter", f"label={key}={value}", "--format", "{{.Names}}"]
        ).stdout
        return [name for name in out.split() if name]

    def container_labels(self, name: str) -> dict[str, str] | None:
        """A container's labels; None when it no longer exists."""
        proc = self._run(
            ["container", "inspect", "--format", "{{json .Config.Labels}}", name], check=False
        )
        if proc.returncode != 0:
            return None
        labels = json.loads(proc.stdout.strip() or "null")
        return {str(k): str(v) for k, v in (labels or {}).items()}

    def stop(self, name: str, timeout: int = SAGEMAKER_STOP_TIMEOUT) -> None:
        """SIGTERM, then SIGKILL after `timeout` seconds, as SageMaker stops containers."""
        self._run(["stop", "--time", str(timeout), name], timeout=timeout + 60)

    def rm(self, name: str, *, force: bool = False, missing_ok: bool = True) -> None:
        """Remove a container; with `force` a running one is killed first (SIGKILL, no wait)."""
        if missing_ok and not self.container_exists(name):
            return
        flags = ["--force"] if force else []
        if force and self.name == "podman":
            flags += ["--time", "0"]  # Podman would first wait 10 s for SIGTERM; Docker kills
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

    def follow_logs(self, name: str) -> Iterator[str]:
        """Lines as the container writes them, until it exits or the iterator is closed."""
        proc = subprocess.Popen(
            [self.binary, "logs", "--follow", name],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        )
        assert proc.stdout is not None
        try:
            for raw in proc.stdout:
                yield raw.rstrip("\n")
        finally:
            if proc.poll() is None:
                proc.terminate()
            proc.wait(timeout=30)
            proc.stdout.close()
