"""Every environment variable the runtime reads, parsed in one place.

`serve` reads them all before it starts anything, so a bad value ends it with status 2 and a
message naming the variable, what it got and what is allowed; the app in gunicorn's workers
reads them through the same functions, so the two never disagree. The table of variables is in
docs/containers.md, "Environment".
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import overload

#: The folder holding composer_serving/ and code/: the build context, /opt/program in an image.
BASE = Path(__file__).resolve().parent.parent
DEFAULT_PORT = 8080
DEFAULT_TIMEOUT = 60
DEFAULT_MAX_BATCH_SIZE = 32
DEFAULT_MME_THREADS = 8  # multi-model: one worker, so concurrency comes from its threads
_TRUE = ("true", "1", "yes")
_FALSE = ("false", "0", "no")


class ConfigError(Exception):
    """A setting in the environment that cannot work; `serve` exits 2 with the message."""


def text(name: str, default: str = "") -> str:
    """The value without surrounding blanks; unset or blank gives the default."""
    return os.environ.get(name, "").strip() or default


@overload
def whole(name: str, default: int, low: int, high: int) -> int: ...
@overload
def whole(name: str, default: None, low: int, high: int) -> int | None: ...
def whole(name: str, default: int | None, low: int, high: int) -> int | None:
    """A whole number from `low` to `high`; unset or blank gives the default."""
    raw = text(name)
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}: got {raw!r}; allowed is a whole number") from None
    if not low <= value <= high:
        raise ConfigError(f"{name}: got {value}; allowed is {low} to {high}")
    return value


def flag(name: str) -> bool | None:
    """true, 1 or yes; false, 0 or no (any case); None when unset or blank."""
    raw = text(name)
    if not raw:
        return None
    if raw.lower() in _TRUE:
        return True
    if raw.lower() in _FALSE:
        return False
    raise ConfigError(f"{name}: got {raw!r}; allowed is true or false")


def port() -> int:
    return whole("SAGEMAKER_BIND_TO_PORT", DEFAULT_PORT, 1, 65535)


def listen_host() -> str:
    return text("COMPOSER_LISTEN_HOST", "0.0.0.0")


def workers() -> int:
    return whole("SAGEMAKER_MODEL_SERVER_WORKERS", os.cpu_count() or 1, 1, 1024)


def timeout() -> int:
    """Seconds a worker may spend on one request (gunicorn's timeout)."""
    return whole("SAGEMAKER_MODEL_SERVER_TIMEOUT", DEFAULT_TIMEOUT, 1, 86400)


def threads(default: int) -> int:
    return whole("COMPOSER_WORKER_THREADS", default, 1, 1024)


#: gunicorn worker classes serve may run; None (unset) leaves the choice to the thread count.
WORKER_CLASSES = ("sync", "gthread", "gevent")


def worker_class() -> str | None:
    """COMPOSER_WORKER_CLASS: sync, gthread or gevent; unset: sync with 1 thread, else gthread."""
    raw = text("COMPOSER_WORKER_CLASS")
    if not raw:
        return None
    if raw not in WORKER_CLASSES:
        raise ConfigError(
            f"COMPOSER_WORKER_CLASS: got {raw!r}; allowed is {', '.join(WORKER_CLASSES)}"
        )
    return raw


def max_batch_size() -> int:
    """COMPOSER_MAX_BATCH_SIZE: requests per batch_predict_fn call; 1 turns batching off."""
    return whole("COMPOSER_MAX_BATCH_SIZE", DEFAULT_MAX_BATCH_SIZE, 1, 1024)


def max_batch_delay_ms() -> int:
    """COMPOSER_MAX_BATCH_DELAY_MS: how long a batch under load may wait for more requests."""
    return whole("COMPOSER_MAX_BATCH_DELAY_MS", 0, 0, 10_000)


def multi_model() -> bool:
    """SAGEMAKER_MULTI_MODEL=true, as the platform sets it for a multi-model container."""
    return flag("SAGEMAKER_MULTI_MODEL") is True


def mme_memory_mb() -> int | None:
    return whole("COMPOSER_MME_MEMORY_MB", None, 1, 16 * 1024 * 1024)


def mme_max_models() -> int | None:
    return whole("COMPOSER_MME_MAX_MODELS", None, 1, 1_000_000)


def preload() -> bool | None:
    """COMPOSER_PRELOAD_MODEL; None leaves the choice to the handler's PRELOAD."""
    return flag("COMPOSER_PRELOAD_MODEL")


def code_dir() -> Path:
    return Path(text("COMPOSER_CODE_DIR") or BASE / "code")


def handler_path() -> Path:
    """code/inference.py, or the file SAGEMAKER_PROGRAM names in code/."""
    return code_dir() / text("SAGEMAKER_PROGRAM", "inference.py")


def model_dir() -> str:
    return text("SM_MODEL_DIR", "/opt/ml/model")


def default_accept() -> str:
    return text("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT", "application/json")


def run_dir_parent() -> str | None:
    """COMPOSER_RUN_DIR: where each start's run folder goes (None: the system's temp folder)."""
    return text("COMPOSER_RUN_DIR") or None
