"""The serving runtime inside every image: nginx in front of gunicorn running a falcon app.

It imports nothing from the rest of sagemaker-composer (falcon, gunicorn and the standard
library only), because it is copied into each build context as the package `composer_serving`.
Handlers import their exceptions from here: `from composer_serving import BadRequest`.
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
    )

#: What every image installs before the container's own requirements.
RUNTIME_REQUIREMENTS: tuple[str, ...] = ("falcon==4.4.0", "gunicorn==27.0.1")

_ERRORS = frozenset(
    {"BadRequest", "ModelNotReady", "NotAcceptable", "ServingError", "UnsupportedContentType"}
)


def __getattr__(name: str) -> Any:
    """The exceptions, imported on first use: whoever only reads RUNTIME_REQUIREMENTS (the
    renderer, inside the long-running `up` process) does not load falcon."""
    if name in _ERRORS:
        from . import errors

        return getattr(errors, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "RUNTIME_REQUIREMENTS",
    "BadRequest",
    "ModelNotReady",
    "NotAcceptable",
    "ServingError",
    "UnsupportedContentType",
]
