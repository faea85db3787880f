"""AWS calls as the rest of the AWS layer makes them: one place maps their failures to messages.

A refused call becomes a DeployError naming the call and AWS's code and message. SageMaker
answers a name that does not exist with ValidationException "Could not find ...", so describing
gives None for it and deleting takes it as done.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from ..errors import ComposerError


class DeployError(ComposerError):
    """AWS refused a call, or what was waited for (an endpoint, a job) did not come up."""


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def error_message(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Message", exc))


def is_missing(exc: ClientError) -> bool:
    """SageMaker says ValidationException 'Could not find ...' for names that do not exist."""
    text = error_message(exc).lower()
    return error_code(exc) in {"ValidationException", "ValidationError"} and (
        "could not find" in text or "not found" in text or "does not exist" in text
    )


def aws_failure(what: str, exc: Exception) -> DeployError:
    if isinstance(exc, ClientError):
        return DeployError(f"{what}: {error_code(exc)}: {error_message(exc)}")
    return DeployError(f"{what}: {exc}")


@contextmanager
def calling(what: str, *, unreachable: bool = False) -> Iterator[None]:
    """A refused call as a DeployError that names `what`; with `unreachable`, a service that
    cannot be reached too (else botocore's error reaches the CLI, which says "AWS: ...")."""
    caught: tuple[type[Exception], ...] = (
        (ClientError, BotoCoreError) if unreachable else (ClientError,)
    )
    try:
        yield
    except caught as exc:
        raise aws_failure(what, exc) from None


def describe(what: str, call: Callable[[], Mapping[str, Any]]) -> dict[str, Any] | None:
    """What `call` describes, or None when SageMaker does not know the name."""
    try:
        return dict(call())
    except ClientError as exc:
        if is_missing(exc):
            return None
        raise aws_failure(what, exc) from None


def delete_if_present(what: str, call: Callable[[], object]) -> bool:
    """Make the delete call; False when there was nothing of that name to delete."""
    try:
        call()
    except ClientError as exc:
        if is_missing(exc):
            return False
        raise aws_failure(what, exc) from None
    return True
