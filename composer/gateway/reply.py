"""The gateway's answer to one request, before either HTTP server writes it.

The InvokeEndpoint core (endpoint.py), the errors (errors.py) and the async queue (asyncinv.py)
answer with a `Reply`; the fast path (fastpath.py) writes it as bytes, the aiohttp path (app.py)
as a `web.Response`. So what is answered does not depend on which server received the request.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

#: Every answer's request id (botocore's ResponseMetadata.RequestId).
H_REQUEST_ID = "x-amzn-RequestId"


@dataclass(slots=True)  # not frozen: that triples the cost of making one, once a request
class Reply:
    """Status, headers (the server adds Content-Length, Date and Connection), whole body.

    `close`: close the connection after this answer (a caller cut off mid-body). Never changed
    once made.
    """

    status: int
    headers: dict[str, str]
    body: bytes
    close: bool = False


def json_reply(
    status: int,
    document: object,
    headers: dict[str, str],
    *,
    close: bool = False,
    content_type: str = "application/json",
) -> Reply:
    """A JSON answer (SageMaker's error shapes, InvokeEndpointAsync's 202)."""
    return Reply(
        status, {"Content-Type": content_type, **headers}, json.dumps(document).encode(), close
    )
