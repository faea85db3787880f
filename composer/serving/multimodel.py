"""SageMaker's multi-model container contract: load, list, describe, unload and invoke models.

Enabled by SAGEMAKER_MULTI_MODEL=true. The platform extracts each model into a folder and asks
the container to load it (`POST /models`); `model_fn` runs once per load, in the one gunicorn
worker that `serve` starts in this mode, so every request sees every loaded model. A memory
budget (RSS growth of the worker during each `model_fn`) and a count cap evict the least
recently used models. See docs/containers.md, "Multi-model containers".
"""

from __future__ import annotations

import base64
import binascii
import errno
import gc
import json
import logging
import os
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import falcon

from . import environment, errors
from .handler import Handler

log = logging.getLogger("composer_serving")

TARGET_MODEL = "X-Amzn-SageMaker-Target-Model"
MB = 1024 * 1024
DEFAULT_PAGE = 100
MAX_PAGE = 1000
#: Names travel in URL paths (/models/{name}), so no '/', '?', '%', '#' or spaces.
NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.~+=@,:-]{0,1023}")
NAME_RULE = (
    "1 to 1024 characters: letters, digits and _ . ~ + = @ , : -, not starting with . ~ + = @ , : -"
)

#: OSErrors that mean "no room" (the contract's 507) rather than a broken model (500).
_OUT_OF = {errno.ENOMEM, errno.ENOSPC, errno.EMFILE, errno.ENFILE}

Invoke = Callable[[Handler, Any, falcon.Request, falcon.Response], None]


def rss_bytes() -> int:
    """This process's resident set size, from /proc/self/statm (Linux)."""
    with open("/proc/self/statm", encoding="ascii") as statm:
        resident_pages = int(statm.read().split()[1])
    return resident_pages * os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True)
class Limits:
    """When to evict: total measured model memory and number of models (None: no cap)."""

    memory_bytes: int | None = None
    max_models: int | None = None

    @classmethod
    def from_environment(cls) -> Limits:
        """COMPOSER_MME_MEMORY_MB and COMPOSER_MME_MAX_MODELS, already checked by serve."""
        memory_mb = environment.mme_memory_mb()
        return cls(
            memory_bytes=None if memory_mb is None else memory_mb * MB,
            max_models=environment.mme_max_models(),
        )


@dataclass
class LoadedModel:
    name: str
    url: str
    model: Any
    memory_bytes: int

    def describe(self) -> dict[str, str]:
        return {"modelName": self.name, "modelUrl": self.url}


def _mb(size: int) -> str:
    return f"{size / MB:.1f} MB"


class Registry:
    """The loaded models, least recently used first.

    `_lock` guards the table and is held only briefly. `_load_lock` lets one `model_fn` run at
    a time: the RSS growth measured around it is then that model's alone, and a second load of
    the same name waits for the first and is answered 409 once it is in.
    """

    def __init__(
        self, handler: Handler, limits: Limits, measure: Callable[[], int] = rss_bytes
    ) -> None:
        self.handler = handler
        self.limits = limits
        self._measure = measure
        self._lock = threading.Lock()
        self._load_lock = threading.Lock()
        self._models: OrderedDict[str, LoadedModel] = OrderedDict()

    def load(self, name: str, url: str) -> tuple[LoadedModel, list[str]]:
        """model_fn(url) once; evict LRU models past a cap; 409 / 500 / 507 as the contract says."""
        with self._lock:
            if name in self._models:
                raise errors.ModelAlreadyLoaded(name)
        with self._load_lock:
            with self._lock:
                if name in self._models:  # loaded by a concurrent request while we waited
                    raise errors.ModelAlreadyLoaded(name)
            started = time.monotonic()
            before = self._measure()
            try:
                model = self.handler.model_fn(url)
            except Exception as exc:
                gc.collect()
                out_of = isinstance(exc, MemoryError) or (
                    isinstance(exc, OSError) and exc.errno in _OUT_OF
                )
                what = "ran out of a resource" if out_of else "failed"
                log.exception("model_fn for model %r %s", name, what)
                cause = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                failure = errors.InsufficientMemory if out_of else errors.ModelLoadError
                raise failure(f"model {name!r}: model_fn({url!r}) {what}: {cause}") from None
            entry = LoadedModel(name, url, model, max(0, self._measure() - before))
            del model
            budget = self.limits.memory_bytes
            if budget is not None and entry.memory_bytes > budget:
                self._release([entry], "it alone exceeds the memory budget")
                raise errors.InsufficientMemory(
                    f"model {name!r} needs {_mb(entry.memory_bytes)} (growth of the worker's RSS "
                    f"during model_fn); COMPOSER_MME_MEMORY_MB allows {_mb(budget)} for all "
                    "models, so it does not fit even alone"
                )
            with self._lock:
                evicted = self._make_room(entry.memory_bytes)
                self._models[name] = entry
            self._release(evicted, "least recently used, to make room for " + repr(name))
        log.info(
            "model %r loaded from %s in %.2f s (%s)",
            name,
            url,
            time.monotonic() - started,
            _mb(entry.memory_bytes),
        )
        return entry, [e.name for e in evicted]

    def _make_room(self, incoming: int) -> list[LoadedModel]:
        """Pop LRU models until the new one fits both caps; called with `_lock` held."""
        evicted: list[LoadedModel] = []
        max_models, budget = self.limits.max_models, self.limits.memory_bytes
        used = sum(e.memory_bytes for e in self._models.values())
        while self._models and (
            (max_models is not None and len(self._models) + 1 > max_models)
            or (budget is not None and used + incoming > budget)
        ):
            _, oldest = self._models.popitem(last=False)
            used -= oldest.memory_bytes
            evicted.append(oldest)
        return evicted

    def _release(self, entries: list[LoadedModel], why: str) -> None:
        """Drop our references (after the handler's optional unload_fn) and collect."""
        if not entries:
            return
        for entry in entries:
            if self.handler.unload_fn is not None:
                try:
                    self.handler.unload_fn(entry.model)
                except Exception:
                    log.exception("unload_fn for model %r failed; dropping it anyway", entry.name)
            entry.model = None
            log.info("model %r unloaded (%s; had %s)", entry.name, why, _mb(entry.memory_bytes))
        gc.collect()

    def get(self, name: str) -> Any:
        """The model for an invoke, which counts as a use for the LRU order."""
        with self._lock:
            entry = self._models.get(name)
            if entry is None:
                raise errors.ModelNotFound(name)
            self._models.move_to_end(name)
            return entry.model

    def describe(self, name: str) -> dict[str, str]:
        with self._lock:
            entry = self._models.get(name)
            if entry is None:
                raise errors.ModelNotFound(name)
            return entry.describe()

    def unload(self, name: str) -> None:
        with self._lock:
            entry = self._models.pop(name, None)
        if entry is None:
            raise errors.ModelNotFound(name)
        self._release([entry], "DELETE /models")

    def page(self, after: str | None, limit: int) -> tuple[list[dict[str, str]], str | None]:
        """Models by name after `after`, and the name to continue from when more follow."""
        with self._lock:
            names = sorted(n for n in self._models if after is None or n > after)
            shown = [self._models[n].describe() for n in names[:limit]]
        more = len(names) > limit
        return shown, shown[-1]["modelName"] if more else None


def _encode_token(after: str) -> str:
    return base64.urlsafe_b64encode(after.encode()).decode().rstrip("=")


def _decode_token(token: str) -> str:
    """The opaque next_page_token back to the last name shown; 400 if it is not one of ours."""
    try:
        name = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        name = ""
    if not NAME.fullmatch(name):
        raise errors.BadRequest(
            f"next_page_token: got {token!r}; allowed is the nextPageToken of a previous "
            "GET /models answer"
        )
    return name


def _page_size(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_PAGE
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_PAGE:
        raise errors.BadRequest(f"limit: got {raw!r}; allowed is a whole number 1 to {MAX_PAGE}")
    return value


def _check_name(name: str, where: str) -> str:
    if not NAME.fullmatch(name):
        raise errors.BadRequest(f"{where}: got {name!r}; allowed is {NAME_RULE}")
    return name


def _load_request(body: bytes) -> tuple[str, str]:
    """{"model_name": ..., "url": "/opt/ml/models/<name>/model"} or a 400 saying what is wrong."""
    shape = '{"model_name": "<name>", "url": "<absolute path of the model folder>"}'
    try:
        doc = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise errors.BadRequest(f"the body is not JSON ({exc}); allowed is {shape}") from None
    if not isinstance(doc, dict):
        raise errors.BadRequest(f"got a JSON {type(doc).__name__}; allowed is {shape}")
    missing = [key for key in ("model_name", "url") if key not in doc]
    if missing:
        raise errors.BadRequest(
            f"got keys {sorted(doc)}; missing {', '.join(missing)}; allowed is {shape}"
        )
    name, url = doc["model_name"], doc["url"]
    for key, value in (("model_name", name), ("url", url)):
        if not isinstance(value, str):
            raise errors.BadRequest(
                f"{key}: got {type(value).__name__} {value!r}; allowed is a string ({shape})"
            )
    extra = sorted(set(doc) - {"model_name", "url"})
    if extra:
        log.warning("POST /models: ignoring keys %s", extra)
    _check_name(name, "model_name")
    if not url or not os.path.isabs(url):
        raise errors.BadRequest(
            f"url: got {url!r}; allowed is the absolute path of a folder in this container"
        )
    folder = Path(url)
    if not folder.exists():
        raise errors.ModelDataNotFound(f"url: got {url!r}, which does not exist in this container")
    if not folder.is_dir():
        raise errors.BadRequest(
            f"url: got {url!r}, which is a file; allowed is the folder holding the extracted model"
        )
    return name, url


_QUERY = ("next_page_token", "limit")


class Models:
    """/models: GET lists (paginated), POST loads."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        unknown = sorted(set(req.params) - set(_QUERY))
        if unknown:
            raise errors.BadRequest(
                f"got query parameters {unknown}; allowed are {', '.join(_QUERY)}"
            )
        token = req.get_param("next_page_token")
        after = _decode_token(token) if token else None
        models, last = self.registry.page(after, _page_size(req.get_param("limit")))
        answer: dict[str, Any] = {"models": models}
        if last is not None:
            answer["nextPageToken"] = _encode_token(last)
        resp.media = answer

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        name, url = _load_request(req.bounded_stream.read())
        entry, evicted = self.registry.load(name, url)
        resp.media = {
            **entry.describe(),
            "status": "loaded",
            "memoryMB": round(entry.memory_bytes / MB, 1),
            "evicted": evicted,
        }


class Model:
    """/models/{model_name}: GET describes, DELETE unloads."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def on_get(self, req: falcon.Request, resp: falcon.Response, model_name: str) -> None:
        resp.media = self.registry.describe(model_name)

    def on_delete(self, req: falcon.Request, resp: falcon.Response, model_name: str) -> None:
        self.registry.unload(model_name)
        resp.media = {"modelName": model_name, "status": "unloaded"}


class ModelInvoke:
    """/models/{model_name}/invoke: the same handler pipeline as /invocations."""

    def __init__(self, registry: Registry, invoke: Invoke) -> None:
        self.registry = registry
        self.invoke = invoke

    def on_post(self, req: falcon.Request, resp: falcon.Response, model_name: str) -> None:
        target = req.get_header(TARGET_MODEL)
        if target is not None:
            log.info("invoke of model %r for TargetModel %r", model_name, target)
        self.invoke(self.registry.handler, self.registry.get(model_name), req, resp)


def install(
    app: falcon.App[falcon.Request, falcon.Response], registry: Registry, invoke: Invoke
) -> None:
    app.add_route("/models", Models(registry))
    app.add_route("/models/{model_name}", Model(registry))
    app.add_route("/models/{model_name}/invoke", ModelInvoke(registry, invoke))


def refuse_models_routes(app: falcon.App[falcon.Request, falcon.Response]) -> None:
    """Single-model containers answer /models with a 404 that says why."""

    def sink(req: falcon.Request, resp: falcon.Response, **_: Any) -> None:
        raise errors.NotFound()

    app.add_sink(sink, prefix=r"^/models(/|$)")
