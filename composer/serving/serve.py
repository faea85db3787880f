"""`serve`: nginx on SAGEMAKER_BIND_TO_PORT in front of gunicorn, supervised together.

nginx.conf is rendered from the template into a fresh run folder at every start (never over the
template), so a restarted container finds its placeholders intact. Either child dying ends
`serve` with a non-zero status, so the platform restarts the container; SIGTERM stops both
gracefully within SageMaker's 30 seconds.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType

DEFAULT_PORT = 8080
DEFAULT_TIMEOUT = 60
STOP_GRACE = 25.0  # SageMaker kills 30 s after SIGTERM; leave room to clean up
PLACEHOLDERS = ("__LISTEN__", "__RUN_DIR__", "__PROXY_TIMEOUT__")


class ConfigError(Exception):
    """A setting in the environment that cannot work; `serve` exits 2 with the message."""


def _int_env(name: str, default: int, low: int, high: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}: got {raw!r}; allowed is a whole number") from None
    if not low <= value <= high:
        raise ConfigError(f"{name}: got {value}; allowed is {low} to {high}")
    return value


def settings() -> dict[str, object]:
    """Everything serve reads from the environment, checked before anything starts."""
    return {
        "port": _int_env("SAGEMAKER_BIND_TO_PORT", DEFAULT_PORT, 1, 65535),
        "host": os.environ.get("COMPOSER_LISTEN_HOST", "").strip() or "0.0.0.0",
        "workers": _int_env("SAGEMAKER_MODEL_SERVER_WORKERS", os.cpu_count() or 1, 1, 1024),
        "timeout": _int_env("SAGEMAKER_MODEL_SERVER_TIMEOUT", DEFAULT_TIMEOUT, 1, 86400),
        "threads": _int_env("COMPOSER_WORKER_THREADS", 1, 1, 1024),
        "preload": os.environ.get("COMPOSER_PRELOAD_MODEL", "true").lower() != "false",
    }


def render_config(template: str, *, host: str, port: int, run_dir: Path, timeout: int) -> str:
    listen = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    text = template.replace("__LISTEN__", listen).replace("__RUN_DIR__", str(run_dir))
    return text.replace("__PROXY_TIMEOUT__", f"{timeout + 5}s")


def _nginx() -> str:
    found = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    if found is None:
        raise ConfigError("nginx is not installed (the image installs nginx-light)")
    return found


def main(argv: list[str]) -> int:
    if argv and argv != ["serve"]:
        print(
            f"serve: got arguments {argv!r}; this image only serves (run it as `IMAGE serve`)",
            file=sys.stderr,
        )
        return 2
    try:
        conf = settings()
        nginx = _nginx()
    except ConfigError as exc:
        print(f"serve: {exc}", file=sys.stderr)
        return 2
    base = Path(__file__).resolve().parent.parent
    template = (base / "nginx.conf.template").read_text(encoding="utf-8")
    parent = os.environ.get("COMPOSER_RUN_DIR") or None
    if parent:
        Path(parent).mkdir(parents=True, exist_ok=True)
    run_dir = Path(tempfile.mkdtemp(prefix="serve-", dir=parent))
    run_dir.chmod(0o755)  # nginx workers (nobody when started as root) reach the socket
    port, timeout = int(str(conf["port"])), int(str(conf["timeout"]))
    (run_dir / "nginx.conf").write_text(
        render_config(
            template, host=str(conf["host"]), port=port, run_dir=run_dir, timeout=timeout
        ),
        encoding="utf-8",
    )
    print(
        f"serve: nginx on {conf['host']}:{port}, gunicorn with {conf['workers']} workers "
        f"(timeout {timeout}s, preload {conf['preload']})",
        file=sys.stderr,
        flush=True,
    )
    env = {
        **os.environ,
        "COMPOSER_CODE_DIR": os.environ.get("COMPOSER_CODE_DIR", str(base / "code")),
    }
    gunicorn_args = [
        sys.executable,
        "-m",
        "gunicorn",
        "--bind",
        f"unix:{run_dir / 'gunicorn.sock'}",
        "--workers",
        str(conf["workers"]),
        # sync workers take a request only when idle (a busy gthread worker would queue it);
        # COMPOSER_WORKER_THREADS > 1 makes gunicorn switch to gthread, with keep-alive.
        "--threads",
        str(conf["threads"]),
        "--timeout",
        str(timeout),
        "--graceful-timeout",
        str(int(STOP_GRACE) - 5),
        "--keep-alive",
        "75",
        "--pythonpath",
        str(base),
        "--error-logfile",
        "-",
        "--no-control-socket",  # one per container would collide in ~/.gunicorn
        *(["--preload"] if conf["preload"] else []),
        "composer_serving.wsgi:application",
    ]
    stopping = False

    def on_signal(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    children: dict[str, subprocess.Popen[bytes]] = {}
    try:
        children["nginx"] = subprocess.Popen(
            [nginx, "-p", str(run_dir), "-c", str(run_dir / "nginx.conf"), "-e", "stderr"]
        )
        children["gunicorn"] = subprocess.Popen(gunicorn_args, env=env)
        failed: tuple[str, int] | None = None
        while not stopping and failed is None:
            for name, child in children.items():
                code = child.poll()
                if code is not None:
                    failed = (name, code)
                    break
            else:
                time.sleep(0.2)
        if failed is not None and not stopping:
            print(f"serve: {failed[0]} exited with status {failed[1]}; stopping", file=sys.stderr)
            return failed[1] or 1
        return 0
    finally:
        _stop(children)
        shutil.rmtree(run_dir, ignore_errors=True)


def _stop(children: dict[str, subprocess.Popen[bytes]]) -> None:
    """Graceful first (nginx QUIT, gunicorn TERM), then kill what is left."""
    graceful = {"nginx": signal.SIGQUIT, "gunicorn": signal.SIGTERM}
    for name, child in children.items():
        if child.poll() is None:
            child.send_signal(graceful[name])
    deadline = time.monotonic() + STOP_GRACE
    for child in children.values():
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
