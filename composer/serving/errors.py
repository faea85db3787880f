"""The one place that turns failures into HTTP answers.

Handlers raise these to choose a status; anything else they raise is a 500. Every answer is a
JSON body naming the cause, and the worker keeps serving.
"""

from __future__ import annotations

import http
import json
import logging
import socket
import sys
from collections.abc import Callable, Iterable
from typing import Any

import falcon

from . import environment

log = logging.getLogger("composer_serving")


class ServingError(Exception):
    """A failure with a known HTTP status; a subclass's name is its `type` on the wire."""

    status = 500
    kind = "InternalError"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # The runtime's own errors are named after their kind. A handler's subclass keeps the
        # kind it inherits (or names), as before: its answers' `type` must not change.
        if cls.__module__ == __name__ and "kind" not in cls.__dict__:
            cls.kind = cls.__name__

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(ServingError):
    """The body cannot be read as the Content-Type says (malformed JSON, wrong shape, ...)."""

    status = 400


class UnsupportedMediaType(ServingError):
    """The handler does not read this Content-Type."""

    status = 415

    def __init__(self, got: str | None, allowed: Iterable[str]) -> None:
        super().__init__(f"got Content-Type {got!r}; this container reads {', '.join(allowed)}")


#: The name handlers imported before the class was named after its kind; kept so they still work.
UnsupportedContentType = UnsupportedMediaType


class NotAcceptable(ServingError):
    """The handler cannot answer in the Accept type asked for."""

    status = 406

    def __init__(self, got: str | None, allowed: Iterable[str]) -> None:
        super().__init__(f"got Accept {got!r}; this container answers {', '.join(allowed)}")


class ModelNotReady(ServingError):
    """The model is still loading; /ping says so too."""

    status = 503


class Timeout(ServingError):
    """No answer within SAGEMAKER_MODEL_SERVER_TIMEOUT (a batched request's own time ran out)."""

    status = 504


class ModelDataNotFound(ServingError):
    """Multi-model: the load request's url is not a folder in this container."""

    status = 404


class InsufficientMemory(ServingError):
    """Multi-model: the contract's 507; the model does not fit even after evicting others."""

    status = 507


class ModelLoadError(ServingError):
    """Multi-model: model_fn raised; the container stays healthy and other models keep serving."""

    status = 500


class ModelNotFound(ServingError):
    """Multi-model: no model of that name is loaded (never was, unloaded, or evicted)."""

    status = 404

    def __init__(self, name: str) -> None:
        super().__init__(
            f"model {name!r} is not loaded; load it with POST /models "
            '{"model_name": ..., "url": ...}'
        )


class ModelAlreadyLoaded(ServingError):
    """Multi-model: the contract's 409 for loading a name that is already loaded."""

    status = 409

    def __init__(self, name: str) -> None:
        super().__init__(
            f"model {name!r} is already loaded; unload it first (DELETE /models/{name}) "
            "to load it again"
        )


class MultiModelContainer(ServingError):
    """/invocations on a multi-model container: the caller must name a model."""

    status = 400

    def __init__(self) -> None:
        super().__init__(
            "this container is multi-model (SAGEMAKER_MULTI_MODEL=true) and has no default "
            "model; load one with POST /models, then invoke it with POST /models/{name}/invoke"
        )


class NotFound(ServingError):
    """/models on a single-model container: those routes exist only in multi-model mode."""

    status = 404

    def __init__(self) -> None:
        super().__init__(
            "no such route; /models exists only in multi-model containers "
            "(SAGEMAKER_MULTI_MODEL=true); this container serves /ping, /invocations and "
            "/execution-parameters"
        )


def error_body(message: str, kind: str) -> bytes:
    return json.dumps({"error": message, "type": kind}).encode()


def _answer(resp: falcon.Response, status: int, message: str, kind: str) -> None:
    resp.status = status
    resp.content_type = "application/json"
    resp.data = error_body(message, kind)


def handle_serving_error(req: falcon.Request, resp: falcon.Response, ex: Any, params: Any) -> None:
    _answer(resp, ex.status, ex.message, ex.kind)


def handle_http_error(req: falcon.Request, resp: falcon.Response, ex: Any, params: Any) -> None:
    """falcon's own errors (404, 405, ...) in the same JSON shape as ours."""
    message = ex.description or ex.title or str(ex.status)
    _answer(resp, falcon.http_status_to_code(ex.status), message, type(ex).__name__)
    for name, value in (ex.headers or {}).items():
        resp.set_header(name, value)


def handle_unexpected(req: falcon.Request, resp: falcon.Response, ex: Any, params: Any) -> None:
    """A handler bug: log the traceback for the container log, answer 500 with the message."""
    log.error("%s %s failed", req.method, req.path, exc_info=ex)
    sys.stderr.flush()
    _answer(resp, 500, f"{type(ex).__name__}: {ex}", "ModelError")


def install(app: falcon.App[falcon.Request, falcon.Response]) -> None:
    # falcon picks the most specific handler for an exception's class.
    app.add_error_handler(Exception, handle_unexpected)
    app.add_error_handler(falcon.HTTPError, handle_http_error)
    app.add_error_handler(ServingError, handle_serving_error)


def answer_past_the_app(environ: dict[str, Any], ex: ServingError) -> bool:
    """Answer a request on its socket while its own thread is stuck (in batch_predict_fn).

    The same JSON answer as through falcon, with `Connection: close`; the socket is shut, so
    whatever the stuck thread writes later goes nowhere. False when the server gives no socket
    (gunicorn's environ has it) or the client is gone.
    """
    sock = environ.get("gunicorn.socket")
    if sock is None:
        return False
    body = error_body(ex.message, ex.kind)
    head = (
        f"HTTP/1.1 {ex.status} {http.HTTPStatus(ex.status).phrase}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    )
    try:
        sock.sendall(head.encode() + body)
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        return False
    return True


WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def answer_stopped_worker(app: WSGIApp) -> WSGIApp:
    """JSON instead of gunicorn's HTML 500 when a worker is stopped mid-request.

    gunicorn stops a sync worker that runs past its timeout by raising SystemExit inside the
    handler; the worker still sends what we return here, then exits and is replaced.
    """
    timeout = environment.timeout()

    def guarded(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        try:
            return app(environ, start_response)
        except SystemExit:
            log.error(
                "%s %s: the worker was stopped before answering (timeout %s s)",
                environ.get("REQUEST_METHOD"),
                environ.get("PATH_INFO"),
                timeout,
                exc_info=True,
            )
            body = error_body(
                f"no answer within SAGEMAKER_MODEL_SERVER_TIMEOUT ({timeout} s); "
                "the worker handling it was replaced",
                "Timeout",
            )
            start_response(
                "504 Gateway Timeout",
                [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
            )
            return [body]

    return guarded
