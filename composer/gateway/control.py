"""The control-plane route: `POST /` with `X-Amz-Target: SageMaker.<Operation>` (AWS JSON 1.1).

The gateway does not know what an operation means: it hands the operation's name and its JSON
document to the `ControlPlane` it was given (composer/localsm/ is one) and writes back the status
and JSON it answers. What it does itself is the envelope botocore's `sagemaker` client expects:
an operation not emulated is `UnknownOperationException` (listing what is), a Content-Type other
than application/x-amz-json-1.1 (parameters aside) is `UnsupportedMediaTypeException` (415), a
body over the payload limit is `ValidationException`, a body that is not a JSON object is
`SerializationException`, and any failure of the handler is `InternalFailure`, never a traceback.
An error's code goes in `__type` and in `x-amzn-ErrorType`, where botocore reads it.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Collection
from typing import Any, Protocol

from aiohttp import web

from .connections import new_request_id
from .reply import H_REQUEST_ID

#: The service prefix of X-Amz-Target that botocore's `sagemaker` client sends.
TARGET_PREFIX = "SageMaker."
CONTENT_TYPE = "application/x-amz-json-1.1"
#: Smithy's code for a request whose Content-Type its protocol does not take (HTTP 415).
UNSUPPORTED_MEDIA_TYPE = "UnsupportedMediaTypeException"


class ControlPlane(Protocol):
    """What answers control-plane operations: a name and a JSON object in, status and JSON out.

    An error answer is a status >= 400 with `{"__type": CODE, "message": TEXT}`.
    """

    @property
    def operations(self) -> Collection[str]: ...

    async def call(
        self, operation: str, document: dict[str, Any]
    ) -> tuple[int, dict[str, Any]]: ...


def error_document(code: str, message: str) -> dict[str, Any]:
    """AWS JSON 1.1's error body."""
    return {"__type": code, "message": message}


def _response(status: int, document: dict[str, Any], request_id: str) -> web.Response:
    headers = {"Content-Type": CONTENT_TYPE, H_REQUEST_ID: request_id}
    code = document.get("__type") if status >= 400 else None
    if isinstance(code, str):
        headers["x-amzn-ErrorType"] = code
    return web.Response(status=status, body=json.dumps(document).encode(), headers=headers)


def control_route(control: ControlPlane) -> Callable[[web.Request], Awaitable[web.Response]]:
    """The aiohttp handler of `POST /` that hands each operation to `control`."""

    async def handle(request: web.Request) -> web.Response:
        request_id = new_request_id()
        target = request.headers.get("X-Amz-Target", "")
        operation = target[len(TARGET_PREFIX) :] if target.startswith(TARGET_PREFIX) else ""
        if operation not in control.operations:
            got = f"operation {target!r}" if target else "no X-Amz-Target header"
            emulated = ", ".join(sorted(control.operations))
            message = (
                f"got {got}; this local SageMaker emulates SageMaker.<Operation> for: {emulated}"
            )
            return _response(400, error_document("UnknownOperationException", message), request_id)
        got_type = request.headers.get("Content-Type")
        if got_type is None or got_type.split(";", 1)[0].strip().lower() != CONTENT_TYPE:
            got = f"Content-Type {got_type!r}" if got_type is not None else "no Content-Type"
            message = (
                f"{operation}: got {got}; the control plane takes {CONTENT_TYPE} (AWS JSON 1.1)"
            )
            return _response(415, error_document(UNSUPPORTED_MEDIA_TYPE, message), request_id)
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge as exc:
            message = f"{operation}: the request body is too large ({exc.text})"
            return _response(400, error_document("ValidationException", message), request_id)
        try:
            document = json.loads(body) if body.strip() else {}
        except (ValueError, UnicodeDecodeError) as exc:
            message = f"{operation}: the request body is not JSON ({exc})"
            return _response(400, error_document("SerializationException", message), request_id)
        if not isinstance(document, dict):
            message = f"{operation}: got a JSON {type(document).__name__}; the input is an object"
            return _response(400, error_document("SerializationException", message), request_id)
        try:
            status, answer = await control.call(operation, document)
        except Exception as exc:  # the handler's bug: still AWS's shape, never a traceback
            message = f"{operation} failed inside the local SageMaker: {type(exc).__name__}: {exc}"
            return _response(500, error_document("InternalFailure", message), request_id)
        return _response(status, answer, request_id)

    return handle
