"""The serving runtime inside every image: nginx in front of gunicorn running a falcon app.

It imports nothing from the rest of sagemaker-composer (falcon, gunicorn and the standard
library only), because it is copied into each build context as the package `composer_serving`.
Handlers import from here: `from composer_serving import BadRequest, media_type`.

Where each part lives: `serve.py` starts and supervises nginx and gunicorn; `environment.py`
reads every environment variable; `app.py` is the falcon app (/ping, /invocations,
/execution-parameters); `handler.py` loads inference.py; `batching.py` hands concurrent
requests to a handler's batch_predict_fn together; `multimodel.py` is the multi-model
contract (/models); `sessions.py` is the handler's side of stateful sessions; `errors.py` turns
failures into HTTP answers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .errors import (
        BadRequest,
        ModelNotReady,
        NotAcceptable,
        ServingError,
        UnsupportedContentType,
        UnsupportedMediaType,
    )
    from .handler import media_type
    from .sessions import NEW_SESSION, close_session, open_session, requested_session

#: What every image installs before the container's own requirements.
RUNTIME_REQUIREMENTS: tuple[str, ...] = ("falcon==4.4.0", "gunicorn==27.0.1")

#: Name -> module, imported on first use: whoever only reads RUNTIME_REQUIREMENTS (the renderer,
#: inside the long-running `up` process) does not load falcon.
_LAZY = {
    "BadRequest": "errors",
    "ModelNotReady": "errors",
    "NotAcceptable": "errors",
    "ServingError": "errors",
    "UnsupportedContentType": "errors",
    "UnsupportedMediaType": "errors",
    "media_type": "handler",
    "NEW_SESSION": "sessions",
    "close_session": "sessions",
    "open_session": "sessions",
    "requested_session": "sessions",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    return getattr(import_module(f".{module}", __name__), name)


__all__ = [
    "NEW_SESSION",
    "RUNTIME_REQUIREMENTS",
    "BadRequest",
    "ModelNotReady",
    "NotAcceptable",
    "ServingError",
    "UnsupportedContentType",
    "UnsupportedMediaType",
    "close_session",
    "media_type",
    "open_session",
    "requested_session",
]
