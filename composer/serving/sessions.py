"""Stateful sessions, the handler's side: what the caller asked for, and how to answer.

SageMaker forwards a caller's `SessionId` as `X-Amzn-SageMaker-Session-Id` (`NEW_SESSION`, or
the id of a session the container opened) and leaves the sessions to the model: the container
opens one by answering `X-Amzn-SageMaker-New-Session-Id: <id>; Expires=<ISO 8601>` and closes
one with `X-Amzn-SageMaker-Closed-Session-Id: <id>`. A handler calls these functions from
`input_fn`, `predict_fn` or `output_fn` (not from inside a streaming generator: by then the
answer's headers are sent); the runtime sets the headers. See docs/containers.md.
"""

from __future__ import annotations

import contextlib
import re
import time
import uuid
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field

SESSION_ID = "X-Amzn-SageMaker-Session-Id"
NEW_SESSION_ID = "X-Amzn-SageMaker-New-Session-Id"
CLOSED_SESSION_ID = "X-Amzn-SageMaker-Closed-Session-Id"
NEW_SESSION = "NEW_SESSION"
DEFAULT_TTL = 1200.0
_ID = re.compile(r"[a-zA-Z0-9](?:-*[a-zA-Z0-9])*")
_MAX_ID = 200  # the header, with "; Expires=...", stays within SageMaker's 256 characters


@dataclass
class _Request:
    requested: str | None
    headers: dict[str, str] = field(default_factory=dict)


_current: ContextVar[_Request | None] = ContextVar("composer_serving_session", default=None)


@contextlib.contextmanager
def scope(requested: str | None) -> Iterator[dict[str, str]]:
    """For the runtime: one request's session state; yields the headers to answer with."""
    state = _Request(requested)
    token = _current.set(state)
    try:
        yield state.headers
    finally:
        _current.reset(token)


def _state(what: str) -> _Request:
    state = _current.get()
    if state is None:
        raise RuntimeError(f"{what} is only meaningful while the runtime handles a request")
    return state


def requested_session() -> str | None:
    """The caller's SessionId: `NEW_SESSION`, a session id, or None when it sent none."""
    return _state("requested_session()").requested


def open_session(session_id: str | None = None, ttl_seconds: float = DEFAULT_TTL) -> str:
    """Answer with a new session (the caller's NewSessionId); returns its id.

    The id is a fresh random one unless given (letters, digits and inner hyphens, at most 200
    characters); it expires `ttl_seconds` from now. Call it when the caller asked for
    `NEW_SESSION`: SageMaker honours a new session only then.
    """
    state = _state("open_session()")
    sid = session_id if session_id is not None else uuid.uuid4().hex
    if len(sid) > _MAX_ID or not _ID.fullmatch(sid):
        raise ValueError(
            f"open_session: got session id {sid[:40]!r}; allowed are letters, digits and inner "
            f"hyphens, at most {_MAX_ID} characters"
        )
    if not ttl_seconds > 0:
        raise ValueError(f"open_session: ttl_seconds must be > 0, got {ttl_seconds}")
    expires = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + ttl_seconds))
    state.headers[NEW_SESSION_ID] = f"{sid}; Expires={expires}"
    return sid


def close_session(session_id: str) -> None:
    """Answer that the session is closed (the caller's ClosedSessionId)."""
    _state("close_session()").headers[CLOSED_SESSION_ID] = session_id
