"""The falcon app every container serves: /ping, /invocations, /execution-parameters.

With SAGEMAKER_MULTI_MODEL=true it serves SageMaker's multi-model routes (/models...) instead of
a default model; see multimodel.py.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import falcon

from . import environment, errors, multimodel, sessions
from .batching import Batcher
from .handler import JSON, Handler, Payload, media_type

CUSTOM_ATTRIBUTES = "X-Amzn-SageMaker-Custom-Attributes"
log = logging.getLogger("composer_serving")


def preferred(header: str, default: str) -> str:
    """The one type a handler answers for: the caller's first choice by q, wildcards -> default.

    Handlers get a single type (as boto3 callers send), never a list to negotiate over.
    """
    choices: list[tuple[float, str]] = []
    for entry in header.split(","):
        value = entry.strip()
        if not value:
            continue
        q = 1.0
        for param in value.split(";")[1:]:
            key, _, raw = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(raw)
                except ValueError:
                    q = 0.0
        if q > 0:
            choices.append((q, value))
    if not choices:
        return default
    best = max(choices, key=lambda c: c[0])[1]  # max keeps the first of equal q
    return default if media_type(best) == "*/*" else best


class ModelState:
    """The loaded model, or why there is none yet."""

    def __init__(self, handler: Handler, model_dir: str) -> None:
        self.handler = handler
        self.model_dir = model_dir
        self.model: Any = None
        self.ready = threading.Event()

    def load(self) -> None:
        self.model = self.handler.model_fn(self.model_dir)
        self.ready.set()
        log.info("model loaded from %s", self.model_dir)

    def load_in_background(self) -> None:
        def run() -> None:
            try:
                self.load()
            except Exception:
                log.exception("model_fn failed; this worker exits")
                os._exit(3)  # gunicorn then sees a dead worker; never serve without a model

        threading.Thread(target=run, name="model-loader", daemon=True).start()


class Ping:
    def __init__(self, ready: threading.Event) -> None:
        self.ready = ready

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        if not self.ready.is_set():
            raise errors.ModelNotReady("the model is loading")
        resp.status = 200
        resp.data = b""


def answerer(default_accept: str, batcher: Batcher | None = None) -> multimodel.Invoke:
    """One request through input_fn -> predict_fn -> output_fn, for /invocations and /models.

    With a batcher, predict_fn's place is taken by the batcher: this request's input goes into
    the next batch_predict_fn call, with the requests that arrived with it.
    """

    def answer(handler: Handler, model: Any, req: falcon.Request, resp: falcon.Response) -> None:
        arrived = time.monotonic()
        predict = None
        if batcher is not None:

            def predict(data: Any, model: Any) -> Any:
                return batcher.predict(data, model, arrived, late)

            def late(error: errors.Timeout) -> bool:
                return errors.answer_past_the_app(req.env, error)

        body = req.bounded_stream.read()
        content_type = req.content_type or JSON
        accept = preferred(req.get_header("Accept") or "", default_accept)
        with sessions.scope(req.get_header(sessions.SESSION_ID)) as session_headers:
            payload, produced = handler.transform(model, body, content_type, accept, predict)
            payload = started(payload)
        if isinstance(payload, bytes):
            resp.data = payload
        else:
            resp.stream = payload  # no Content-Length: gunicorn sends it chunked, item by item
            resp.set_header("X-Accel-Buffering", "no")  # and nginx passes each on at once
        resp.content_type = produced
        for name, value in session_headers.items():
            resp.set_header(name, value)
        attributes = req.get_header(CUSTOM_ATTRIBUTES)
        if attributes is not None:
            resp.set_header(CUSTOM_ATTRIBUTES, attributes)

    return answer


def started(payload: Payload) -> Payload:
    """A stream with its first item already produced, or the whole body.

    A handler that fails before its first item gets the error answer it would without
    streaming (the status is not sent yet); an empty stream is an empty body.
    """
    if isinstance(payload, bytes):
        return payload
    for first in payload:
        if first:
            return _streamed(first, payload)
    return b""


def _streamed(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    """Each item as one write (one HTTP chunk); a failure cuts the answer off, logged."""
    yield first
    sent = 1
    try:
        for item in rest:
            if item:  # an empty chunk would end the answer early
                yield item
                sent += 1
    except Exception:
        log.error(
            "the handler's stream failed after %d parts; the answer is cut off", sent, exc_info=True
        )
        raise


class Invocations:
    def __init__(self, state: ModelState, answer: multimodel.Invoke) -> None:
        self.state = state
        self.answer = answer

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        if not self.state.ready.is_set():
            raise errors.ModelNotReady("the model is loading")
        self.answer(self.state.handler, self.state.model, req, resp)


class MultiModelInvocations:
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        raise errors.MultiModelContainer()


class ExecutionParameters:
    def __init__(self, handler: Handler) -> None:
        self.handler = handler

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = self.handler.execution_parameters()


def batching(handler: Handler) -> tuple[int, int] | None:
    """(max batch size, max delay in ms) when this worker batches, else None.

    `serve` decides the same from the handler's source (serve.handler_batches), to run threaded
    workers; multi-model containers do not batch.
    """
    size = environment.max_batch_size()
    if handler.batch_predict_fn is None or size < 2 or environment.multi_model():
        return None
    return size, environment.max_batch_delay_ms()


def create_app(
    *, preload: bool | None = None, on_overrun: Callable[[], None] | None = None
) -> falcon.App[falcon.Request, falcon.Response]:
    """Load the handler (and, when preloading, the model) and build the WSGI app.

    A multi-model container loads no model here: /ping is 200 once the handler is imported.
    `on_overrun` is the batcher's: called when a batch runs past a request's timeout.
    """
    logging.basicConfig(
        stream=sys.stderr, level=logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    handler = Handler.from_environment()
    app = falcon.App(media_type=JSON)
    app.req_options.strip_url_path_trailing_slash = True
    errors.install(app)
    answer = answerer(environment.default_accept())
    app.add_route("/execution-parameters", ExecutionParameters(handler))
    if environment.multi_model():
        limits = multimodel.Limits.from_environment()
        registry = multimodel.Registry(handler, limits)
        ready = threading.Event()
        ready.set()
        app.add_route("/ping", Ping(ready))
        app.add_route("/invocations", MultiModelInvocations())
        multimodel.install(app, registry, answer)
        log.info(
            "multi-model container: no default model; memory budget %s, count cap %s",
            "none" if limits.memory_bytes is None else f"{limits.memory_bytes // multimodel.MB} MB",
            "none" if limits.max_models is None else limits.max_models,
        )
        return app
    state = ModelState(handler, environment.model_dir())
    batches = batching(handler)
    if batches is not None and handler.batch_predict_fn is not None:
        size, delay_ms = batches
        batcher = Batcher(
            handler.batch_predict_fn,
            max_size=size,
            max_delay=delay_ms / 1000,
            timeout=environment.timeout(),
            on_overrun=on_overrun,
            cooperative=environment.worker_class() == "gevent",
        )
        answer = answerer(environment.default_accept(), batcher)
        log.info("batching: up to %d requests per batch_predict_fn call, delay %d ms", *batches)
    if preload is None:
        preload = environment.preload()
    if preload is None:
        preload = getattr(handler.module, "PRELOAD", True) is not False
    if preload:
        state.load()
    else:
        state.load_in_background()
    app.add_route("/ping", Ping(state.ready))
    app.add_route("/invocations", Invocations(state, answer))
    multimodel.refuse_models_routes(app)
    return app
