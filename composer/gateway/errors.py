"""Every failure the gateway reports, in the shapes of botocore's sagemaker-runtime model.

botocore (rest-json) takes the error code from the `x-amzn-ErrorType` header, the message from
the body's `message`/`Message`, and each modeled member from the body's top-level key of the same
name; so `client.exceptions.ModelError` carries `OriginalStatusCode` etc. in `e.response`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from ..sagemaker_facts import MAX_TARGET_MODEL
from .config import GatewayConfig
from .reply import H_REQUEST_ID, Reply, json_reply

_TIMEOUT_TEXT = (
    "Your invocation timed out while waiting for a response from container {host}. "
    "Review the latency metrics for each container in Amazon CloudWatch, resolve the issue, "
    "and try again."
)
_DOWN_TEXT = (
    "Amazon SageMaker could not get a response from container {host}: {why}. "
    "Check the container's log; the local runner restarts a container that exits."
)


class GatewayError(Exception):
    """A SageMaker Runtime error: HTTP status, error code, and modeled body members."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "InternalFailure"
    close: ClassVar[bool] = False  # close the connection after the answer

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def members(self) -> dict[str, object]:
        return {"Message": self.message}

    def to_reply(self, request_id: str) -> Reply:
        headers = {"x-amzn-ErrorType": self.code, H_REQUEST_ID: request_id}
        return json_reply(self.status, self.members(), headers, close=self.close)


class ValidationError(GatewayError):
    """The request is wrong (HTTP 400); botocore raises `ValidationError`."""

    status = 400
    code = "ValidationError"


class InternalFailure(GatewayError):
    """The gateway itself failed (HTTP 500), never with a traceback to the caller."""

    status = 500
    code = "InternalFailure"


class ModelError(GatewayError):
    """A container failed (HTTP 424): it answered 4xx/5xx, timed out, or could not be reached."""

    status = 424
    code = "ModelError"

    def __init__(
        self,
        config: GatewayConfig,
        hostname: str,
        original_status: int,
        original_message: str,
    ) -> None:
        kind = "client" if 400 <= original_status < 500 else "server"
        upstream = config.upstream(hostname)
        where = (
            upstream.log_path
            if upstream and upstream.log_path
            else f"the log of container {hostname}"
        )
        super().__init__(
            f"Received {kind} error ({original_status}) from {hostname} with message "
            f'"{original_message}". See {where} for more information.'
        )
        self.hostname = hostname
        self.original_status = original_status
        self.original_message = original_message
        self.log_stream_arn = config.log_stream_arn(hostname)

    def members(self) -> dict[str, object]:
        return {
            "Message": self.message,
            "OriginalStatusCode": self.original_status,
            "OriginalMessage": self.original_message,
            "LogStreamArn": self.log_stream_arn,
        }

    @classmethod
    def timed_out(cls, config: GatewayConfig, hostname: str) -> ModelError:
        return cls(config, hostname, 0, _TIMEOUT_TEXT.format(host=hostname))

    @classmethod
    def unreachable(cls, config: GatewayConfig, hostname: str, why: str) -> ModelError:
        return cls(config, hostname, 0, _DOWN_TEXT.format(host=hostname, why=why))


def unknown_endpoint(account_id: str, name: str) -> ValidationError:
    return ValidationError(f"Endpoint {name} of account {account_id} not found.")


def oversize_request(request_id: str, limit: int, got: int | None) -> ValidationError:
    """SageMaker's wording first, then what was got and what is allowed."""
    size = f"{got} bytes" if got is not None else f"more than {limit} bytes"
    return ValidationError(
        f"Request {request_id} has oversize body. Got {size}; "
        f"the limit is {limit} bytes ({limit / 1048576:g} MiB)."
    )


class SlowRequest(ValidationError):
    """The caller's body did not arrive in time (slowloris); the connection is closed too."""

    close = True  # never keep reading what the caller still trickles


def slow_request(request_id: str, timeout: float, got: int, declared: int | None) -> SlowRequest:
    of = f" of {declared}" if declared is not None else ""
    return SlowRequest(
        f"Request {request_id}: its body did not arrive within {timeout:g} s (got {got}{of} "
        f"bytes); the gateway cuts off callers slower than that "
        "(COMPOSER_GATEWAY_CLIENT_TIMEOUT sets the limit)."
    )


#: InvokeEndpoint's header members with the constraints botocore's model gives them
#: (length, pattern): SageMaker refuses a request that breaks one with ValidationError.
_HEADER_RULES: tuple[tuple[str, str, int, bool], ...] = (
    # (header, member, max length, printable: no control characters, no leading space)
    ("Content-Type", "ContentType", 1024, False),
    ("Accept", "Accept", 1024, False),
    ("X-Amzn-SageMaker-Custom-Attributes", "CustomAttributes", 1024, False),
    ("X-Amzn-SageMaker-Inference-Id", "InferenceId", 64, True),
    ("X-Amzn-SageMaker-Target-Model", "TargetModel", MAX_TARGET_MODEL, True),
)
#: InvokeEndpointWithResponseStream's: Accept travels as X-Amzn-SageMaker-Accept; no TargetModel.
STREAM_HEADER_RULES: tuple[tuple[str, str, int, bool], ...] = (
    ("Content-Type", "ContentType", 1024, False),
    ("X-Amzn-SageMaker-Accept", "Accept", 1024, False),
    ("X-Amzn-SageMaker-Custom-Attributes", "CustomAttributes", 1024, False),
    ("X-Amzn-SageMaker-Inference-Id", "InferenceId", 64, True),
)


def check_headers(
    headers: Mapping[str, str], rules: tuple[tuple[str, str, int, bool], ...] = _HEADER_RULES
) -> None:
    """Refuse header values SageMaker refuses: too long, non-ASCII (or not printable).

    Also keeps the gateway from forwarding what a container's HTTP stack may choke on.
    """
    for header, member, most, printable in rules:
        value = headers.get(header)
        if value is None:
            continue
        if len(value) > most:
            raise ValidationError(
                f"{member} ({header}): got {len(value)} characters; at most {most} are allowed."
            )
        if not value.isascii() or (
            printable and (not value or value[0] == " " or not value.isprintable())
        ):
            allowed = "printable ASCII, not starting with a space" if printable else "ASCII"
            raise ValidationError(
                f"{member} ({header}): got {value[:40]!a}; only {allowed} characters are allowed."
            )
