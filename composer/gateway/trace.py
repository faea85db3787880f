"""The per-hop trace: what each container of an invocation received and answered.

Why here and this shape: every hop of every invocation (InvokeEndpoint, its streaming form,
async) is recorded, so the fast path pays for it. A hop is one tuple appended to a bounded
`deque` (memory stays flat under load); nothing is formatted until it is read (the JSON API,
`up --trace`'s line). Bodies are kept only when asked (`--trace-bodies`), cut to `body_limit`
bytes, because they can hold data the user does not want written anywhere.

The request id reaches the hop through a context variable, set where the invocation starts:
each request runs in a task of its own (asynchronous ones too, whose task copies the context).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

#: The request id of the invocation running in this task ("" outside one).
REQUEST_ID: ContextVar[str] = ContextVar("composer_request_id", default="")

#: Hops kept by default; bodies cut to this many bytes by default.
DEFAULT_HOPS = 1000
DEFAULT_BODY_LIMIT = 1024

#: One recorded hop, as appended (the field order of `FIELDS`).
Hop = tuple[Any, ...]
FIELDS = (
    "time",
    "request_id",
    "endpoint",
    "hostname",
    "content_type",
    "accept",
    "request_size",
    "status",
    "response_content_type",
    "response_size",
    "latency_ms",
    "request_body",
    "response_body",
)


class Trace:
    """A gateway's ring buffer of hops; `on_hop` (e.g. `up --trace`'s printer) sees each one."""

    def __init__(
        self,
        maxlen: int = DEFAULT_HOPS,
        *,
        bodies: bool = False,
        body_limit: int = DEFAULT_BODY_LIMIT,
        on_hop: Callable[[Hop], None] | None = None,
    ) -> None:
        if maxlen < 1:
            raise ValueError(f"a trace keeps at least 1 hop; got maxlen={maxlen}")
        self.hops: deque[Hop] = deque(maxlen=maxlen)
        self.bodies = bodies
        self.body_limit = body_limit
        self.on_hop = on_hop

    def record(
        self,
        endpoint: str,
        hostname: str,
        content_type: str | None,
        accept: str | None,
        request_body: bytes,
        status: int | None,
        response_content_type: str | None,
        response_body: bytes | None,
        response_size: int | None,
        latency_ns: int,
    ) -> None:
        """One hop (status None: no answer, e.g. a timeout or a broken connection)."""
        cut = self.body_limit
        hop = (
            time.time(),
            REQUEST_ID.get(),
            endpoint,
            hostname,
            content_type,
            accept,
            len(request_body),
            status,
            response_content_type,
            response_size,
            latency_ns,
            request_body[:cut] if self.bodies else None,
            response_body[:cut] if self.bodies and response_body is not None else None,
        )
        self.hops.append(hop)
        if self.on_hop is not None:
            self.on_hop(hop)

    def recent(self, limit: int | None = None, request_id: str | None = None) -> list[Hop]:
        """The last `limit` hops (all kept, by default), oldest first."""
        hops = list(self.hops)
        if request_id is not None:
            hops = [h for h in hops if h[1] == request_id]
        return hops if limit is None else hops[-limit:] if limit > 0 else []


def as_json(hop: Hop) -> dict[str, Any]:
    """A hop as the JSON API gives it (bodies as text, undecodable bytes replaced)."""
    doc = dict(zip(FIELDS, hop, strict=True))
    doc["latency_ms"] = round(hop[10] / 1e6, 3)
    for key in ("request_body", "response_body"):
        body = doc[key]
        if body is None:
            del doc[key]
        else:
            doc[key] = body.decode("utf-8", "replace")
    return doc


def line(hop: Hop) -> str:
    """`up --trace`'s one compact line for a hop."""
    (_, rid, endpoint, host, ctype, accept, size, status, rtype, rsize, ns, rbody, abody) = hop
    answer = "no answer" if status is None else f"{status} {rtype or '-'} {_size(rsize)}"
    text = (
        f"trace {rid[:8] or '-'} {endpoint}/{host}: {ctype or '-'} {size} B "
        f"(accept {accept or '-'}) -> {answer} in {ns / 1e6:.1f} ms"
    )
    if rbody is not None:
        text += f"\n  request:  {rbody.decode('utf-8', 'replace')!r}"
    if abody is not None:
        text += f"\n  response: {abody.decode('utf-8', 'replace')!r}"
    return text


def _size(size: int | None) -> str:
    return "? B" if size is None else f"{size} B"
