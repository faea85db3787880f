"""The control plane's failures as SageMaker answers them: one exception, code and message.

Operations raise `ApiError`; the operations table (operations.py) turns it into the status and
JSON the gateway writes (`{"__type": CODE, "message": ...}`, composer/gateway/control.py).
"""

from __future__ import annotations


class ApiError(Exception):
    """A refused request: HTTP status, SageMaker's error code, a message saying what and why."""

    def __init__(self, message: str, code: str = "ValidationException", status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status


def not_found(what: str, name: str) -> ApiError:
    """SageMaker's wording: `Could not find model "NAME".` (boto3's waiters rely on the code)."""
    return ApiError(f'Could not find {what} "{name}".')


def already_exists(what: str, arn: str) -> ApiError:
    return ApiError(f'Cannot create already existing {what} "{arn}".')
