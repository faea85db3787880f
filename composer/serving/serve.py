"""`serve`: nginx on SAGEMAKER_BIND_TO_PORT in front of gunicorn, supervised together.

nginx.conf is rendered from the template into a fresh run folder at every start (never over the
template), so a restarted container finds its placeholders intact. Either child dying ends
`serve` with a non-zero status, so the platform restarts the container; SIGTERM stops both
gracefully within SageMaker's 30 seconds.
"""

from __future__ import annotations

import ast
import contextlib
import ctypes
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType

from . import environment
from .environment import ConfigError

STOP_GRACE = 25.0  # SageMaker kills 30 s after SIGTERM; leave room to clean up
PLACEHOLDERS = ("__LISTEN__", "__RUN_DIR__", "__PROXY_TIMEOUT__")
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def handler_preload(path: Path) -> bool | None:
    """The handler's module-level `PRELOAD = True|False`, read without importing it.

    Importing would load the handler's libraries in serve itself; a literal is all we need.
    """
    found: bool | None = None
    for node in _parsed(path).body:
        if isinstance(node, ast.Assign):
            names = [t.id for t in node.targets if isinstance(t, ast.Name)]
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names = [node.target.id]
        else:
            continue
        if "PRELOAD" not in names or node.value is None:
            continue
        if not (isinstance(node.value, ast.Constant) and isinstance(node.value.value, bool)):
            raise ConfigError(
                f"{path}: line {node.lineno}: PRELOAD must be the literal True or False"
            )
        found = node.value.value
    return found


def _parsed(path: Path) -> ast.Module:
    if not path.is_file():
        raise ConfigError(f"no handler module at {path} (SAGEMAKER_PROGRAM names a file in code/)")
    try:
        return ast.parse(path.read_bytes(), filename=str(path))
    except SyntaxError as exc:
        raise ConfigError(f"{path}: line {exc.lineno}: {exc.msg}") from None


def handler_batches(path: Path) -> bool:
    """Whether the handler defines `batch_predict_fn` at module level, read without importing."""
    for node in _parsed(path).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            names = [node.name]
        elif isinstance(node, ast.Assign):
            names = [t.id for t in node.targets if isinstance(t, ast.Name)]
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names = [node.target.id]
        elif isinstance(node, ast.ImportFrom | ast.Import):
            names = [a.asname or a.name for a in node.names]
        else:
            continue
        if "batch_predict_fn" in names:
            return True
    return False


def settings(handler: Path | None = None) -> dict[str, object]:
    """Everything serve reads from the environment, checked before anything starts.

    Preloading: COMPOSER_PRELOAD_MODEL when set, else the handler's PRELOAD, else true.
    Multi-model (SAGEMAKER_MULTI_MODEL=true): one gunicorn worker, so a model loaded through
    one request is there for every other; COMPOSER_WORKER_THREADS threads (default 8, at least
    2 so /ping answers while a model_fn runs) serve requests concurrently.
    Batching (a handler with batch_predict_fn, COMPOSER_MAX_BATCH_SIZE above 1, not multi-model):
    threaded workers, COMPOSER_WORKER_THREADS threads each (default twice the batch size), so
    a worker takes the requests that queue while its batch runs.
    """
    found: dict[str, object] = {
        "port": environment.port(),
        "host": environment.listen_host(),
        "workers": environment.workers(),
        "timeout": environment.timeout(),
        "threads": environment.threads(1),
    }
    multi_model = environment.multi_model()
    found["multi_model"] = multi_model
    found["memory_mb"] = environment.mme_memory_mb()
    found["max_models"] = environment.mme_max_models()
    if multi_model:
        found["workers"] = 1
        threads = environment.threads(environment.DEFAULT_MME_THREADS)
        if threads < 2:
            raise ConfigError(
                f"COMPOSER_WORKER_THREADS: got {threads}; allowed is 2 to 1024 in multi-model "
                "mode (one thread could not answer /ping while a model loads)"
            )
        found["threads"] = threads
        if found["memory_mb"] is not None and not Path("/proc/self/statm").is_file():
            raise ConfigError(
                "COMPOSER_MME_MEMORY_MB: set, but /proc/self/statm is missing, so model memory "
                "cannot be measured; allowed only on Linux (unset it to run without a budget)"
            )
    found["max_batch_size"] = environment.max_batch_size()
    found["max_batch_delay_ms"] = environment.max_batch_delay_ms()
    found["batching"] = (
        not multi_model
        and int(str(found["max_batch_size"])) > 1
        and handler is not None
        and handler_batches(handler)
    )
    if found["batching"]:
        size = int(str(found["max_batch_size"]))
        threads = environment.threads(min(1024, 2 * size))
        if threads < 2:
            raise ConfigError(
                f"COMPOSER_WORKER_THREADS: got {threads}; allowed is 2 to 1024 when batching "
                "(one thread takes one request at a time, so nothing would batch); set "
                "COMPOSER_MAX_BATCH_SIZE=1 to turn batching off"
            )
        found["threads"] = threads
    found["worker_class"] = _worker_class(int(str(found["threads"])))
    preload = environment.preload()
    if preload is None and handler is not None:
        preload = handler_preload(handler)
    found["preload"] = True if preload is None else preload
    return found


def _worker_class(threads: int) -> str:
    """COMPOSER_WORKER_CLASS, checked against the threads it must hold; by default gunicorn's
    own choice (sync with one thread, gthread with more)."""
    chosen = environment.worker_class()
    if chosen is None:
        return "sync" if threads == 1 else "gthread"
    if chosen == "sync" and threads > 1:
        raise ConfigError(
            f"COMPOSER_WORKER_CLASS: got 'sync' with {threads} threads per worker (batching, "
            "multi-model or COMPOSER_WORKER_THREADS); a sync worker holds one request at a "
            "time; allowed here is gthread or gevent"
        )
    if chosen == "gevent" and importlib.util.find_spec("gevent") is None:
        raise ConfigError(
            "COMPOSER_WORKER_CLASS: got 'gevent', but gevent is not installed in this "
            "environment; add it to the container's requirements.txt, or use gthread"
        )
    return chosen


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
    base = environment.BASE
    try:
        conf = settings(environment.handler_path())
        parent = environment.run_dir_parent()
        nginx = _nginx()
    except ConfigError as exc:
        print(f"serve: {exc}", file=sys.stderr)
        return 2
    template = (base / "nginx.conf.template").read_text(encoding="utf-8")
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
    mode = ""
    if conf["multi_model"]:
        budget = f"{conf['memory_mb']} MB" if conf["memory_mb"] else "none"
        mode = f"; multi-model, memory budget {budget}, count cap {conf['max_models'] or 'none'}"
    if conf["batching"]:
        mode += (
            f"; batching up to {conf['max_batch_size']} requests, "
            f"delay {conf['max_batch_delay_ms']} ms"
        )
    print(
        f"serve: nginx on {conf['host']}:{port}, gunicorn with {conf['workers']} worker(s) "
        f"x {conf['threads']} thread(s) (timeout {timeout}s, preload {conf['preload']}{mode})"
        + ("" if conf["worker_class"] != "gevent" else "; gevent workers"),
        file=sys.stderr,
        flush=True,
    )
    env = {
        **os.environ,
        "COMPOSER_CODE_DIR": str(environment.code_dir()),
        # the app loads the model in gunicorn's master when preloading, else in each worker
        "COMPOSER_PRELOAD_MODEL": "true" if conf["preload"] else "false",
    }
    connections = ["--worker-connections", str(conf["threads"])]  # gevent's "threads"
    if conf["worker_class"] != "gevent":
        connections = []
    gunicorn_args = [
        sys.executable,
        "-m",
        "gunicorn",
        "--bind",
        f"unix:{run_dir / 'gunicorn.sock'}",
        "--workers",
        str(conf["workers"]),
        # sync workers take a request only when idle (a busy gthread worker would queue it);
        # COMPOSER_WORKER_THREADS > 1 (and batching) makes gunicorn switch to gthread, with
        # keep-alive: a batching worker must hold the requests that queue while its batch runs.
        # gevent (COMPOSER_WORKER_CLASS) holds as many connections instead of threads.
        "--worker-class",
        str(conf["worker_class"]),
        "--threads",
        str(conf["threads"]),
        *connections,
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
            [nginx, "-p", str(run_dir), "-c", str(run_dir / "nginx.conf"), "-e", "stderr"],
            process_group=0,
            preexec_fn=end_with_parent,
        )
        children["gunicorn"] = subprocess.Popen(
            gunicorn_args, env=env, process_group=0, preexec_fn=end_with_parent
        )
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
            name, code = failed
            how = f"was killed by signal {-code}" if code < 0 else f"exited with status {code}"
            print(f"serve: {name} {how}; stopping", file=sys.stderr)
            return code if code > 0 else 1
        return 0
    finally:
        _stop(children)
        shutil.rmtree(run_dir, ignore_errors=True)


def end_with_parent() -> None:
    """In the child before exec: SIGTERM it when serve dies, even by SIGKILL (Linux only)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass  # not Linux: the stop in main's finally still covers every normal exit


def _stop(children: dict[str, subprocess.Popen[bytes]]) -> None:
    """Graceful first (nginx QUIT, gunicorn TERM), then kill what is left.

    Each child leads its own process group, so a master's workers go too, even when the master
    itself was killed and left them behind.
    """
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
    for child in children.values():
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(child.pid, signal.SIGKILL)
