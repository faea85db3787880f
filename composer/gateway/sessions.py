"""Stateful sessions (SessionId): which session IDs are open on one endpoint, until when.

SageMaker leaves sessions to the model: a caller sends `SessionId: NEW_SESSION`, the container
opens one and answers `X-Amzn-SageMaker-New-Session-Id: <id>; Expires=<ISO 8601>`; later
requests carry that id and SageMaker routes them to the instance that holds the session; a
container's `X-Amzn-SageMaker-Closed-Session-Id` ends it. This table is the gateway's side: it
forgets a session when its container closes it or when it expires, and refuses an id it does
not hold (ValidationError: see docs/gateway.md, "Stateful sessions"). One table per endpoint,
so a session can later name the instance it lives on.

Costs InvokeEndpoint nothing unless the request carries a SessionId (one header lookup).
"""

from __future__ import annotations

import calendar
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from .errors import ValidationError

#: Request header (InvokeEndpoint and InvokeEndpointWithResponseStream: SessionId).
H_SESSION = "X-Amzn-SageMaker-Session-Id"
#: Response headers (InvokeEndpointOutput: NewSessionId, ClosedSessionId).
H_NEW_SESSION = "X-Amzn-SageMaker-New-Session-Id"
H_CLOSED_SESSION = "X-Amzn-SageMaker-Closed-Session-Id"
NEW_SESSION = "NEW_SESSION"
MAX_ID = 256

# botocore's model: SessionIdHeader and NewSessionResponseHeader (at most 256 characters)
_ID = re.compile(r"[a-zA-Z0-9](?:-*[a-zA-Z0-9])*")
_NEW = re.compile(
    r"(?P<id>[a-zA-Z0-9](?:-*[a-zA-Z0-9])*);\sExpires="
    r"(?P<expires>[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z)"
)
_NEW_LOWER = H_NEW_SESSION.lower()
_CLOSED_LOWER = H_CLOSED_SESSION.lower()
_PRUNE_EVERY = 256  # opens between two sweeps of expired sessions


class BadSessionAnswer(Exception):
    """A container's session header breaks the contract (the endpoint makes it a ModelError)."""


@dataclass(frozen=True)
class Session:
    id: str
    expires: float  # epoch seconds
    expires_text: str
    opened_by: str  # the container hostname that opened it


class SessionTable:
    """The open sessions of one endpoint."""

    def __init__(self, endpoint_name: str, clock: Callable[[], float] = time.time) -> None:
        self.endpoint_name = endpoint_name
        self.clock = clock
        self.open: dict[str, Session] = {}
        self._opens = 0

    def check(self, value: str, *, may_open: bool) -> None:
        """Refuse a SessionId that is malformed, unknown or expired (and NEW_SESSION if not
        `may_open`: InvokeEndpointWithResponseStream cannot open a session)."""
        if value == NEW_SESSION:
            if not may_open:
                raise ValidationError(
                    "InvokeEndpointWithResponseStream cannot open a stateful session (got "
                    "SessionId NEW_SESSION); open it with InvokeEndpoint, then stream with the "
                    "ID its NewSessionId gives."
                )
            return
        if len(value) > MAX_ID or not _ID.fullmatch(value):
            raise ValidationError(
                f"SessionId ({H_SESSION}): got {value[:40]!a}; allowed is NEW_SESSION or a "
                f"session ID of letters, digits and inner hyphens, at most {MAX_ID} characters."
            )
        session = self.open.get(value)
        if session is None:
            raise ValidationError(
                f"Session {value} is not an open session of endpoint {self.endpoint_name}: it "
                "was never opened or has been closed. Open one with SessionId NEW_SESSION."
            )
        if session.expires <= self.clock():
            del self.open[value]
            raise ValidationError(
                f"Session {value} of endpoint {self.endpoint_name} expired at "
                f"{session.expires_text}. Open a new one with SessionId NEW_SESSION."
            )

    def answered(
        self, sent: str, headers: Mapping[str, str], hostname: str
    ) -> dict[str, str] | None:
        """The caller's session headers from a container's answer (names lower-cased) to a
        request that carried SessionId `sent`; the table follows what the container said.

        New-Session-Id counts only in answer to NEW_SESSION, Closed-Session-Id only for the
        session the request named.
        """
        found: dict[str, str] = {}
        new = headers.get(_NEW_LOWER)
        if new is not None and sent == NEW_SESSION:
            match = _NEW.fullmatch(new)
            if match is None or len(new) > MAX_ID:
                raise BadSessionAnswer(
                    f"Container {hostname} answered {H_NEW_SESSION}: {new[:80]!a}; expected "
                    "'<id>; Expires=YYYY-MM-DDTHH:MM:SSZ' (an id of letters, digits and inner "
                    f"hyphens; at most {MAX_ID} characters in all)."
                )
            text = match["expires"]
            expires = calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ"))
            self._remember(Session(match["id"], expires, text, hostname))
            found[H_NEW_SESSION] = new
        closed = headers.get(_CLOSED_LOWER)
        if closed is not None and closed == sent:
            self.open.pop(closed, None)
            found[H_CLOSED_SESSION] = closed
        return found or None

    def _remember(self, session: Session) -> None:
        self._opens += 1
        if self._opens % _PRUNE_EVERY == 0:
            now = self.clock()
            self.open = {k: s for k, s in self.open.items() if s.expires > now}
        self.open[session.id] = session
