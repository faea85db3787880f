"""A stateful-session example: a counter each caller keeps in its own session.

SessionId NEW_SESSION opens a session (count 0); each request with its id adds `add` (default
1) and answers the count; {"requestType": "CLOSE"} closes it. The counts live in files in a
folder `model_fn` makes before gunicorn forks, so every worker sees every session.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from composer_serving import (
    NEW_SESSION,
    BadRequest,
    close_session,
    open_session,
    requested_session,
)

TTL_SECONDS = 1200.0


def model_fn(model_dir: str) -> Path:
    return Path(tempfile.mkdtemp(prefix="session-counter-"))


def input_fn(body: bytes, content_type: str) -> dict[str, Any]:
    doc = json.loads(body) if body.strip() else {}
    if not isinstance(doc, dict):
        raise BadRequest(
            'expected a JSON object: {"add": N}, {"ttl": S} or {"requestType": "CLOSE"}'
        )
    return doc


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    with open(folder / ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def predict_fn(doc: dict[str, Any], folder: Path) -> dict[str, Any]:
    session = requested_session()
    if session is None:
        raise BadRequest("send SessionId NEW_SESSION to open a counter, then its id to count")
    with _locked(folder):
        if session == NEW_SESSION:
            sid = open_session(ttl_seconds=float(doc.get("ttl", TTL_SECONDS)))
            (folder / sid).write_text("0")
            return {"session": sid, "count": 0}
        state = folder / session
        if not state.is_file():
            raise BadRequest(f"session {session} is not open in this container")
        count = int(state.read_text())
        if doc.get("requestType") == "CLOSE":
            os.unlink(state)
            close_session(session)
            return {"session": session, "count": count, "closed": True}
        count += int(doc.get("add", 1))
        state.write_text(str(count))
        return {"session": session, "count": count}
