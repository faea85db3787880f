"""EndpointClient: invoke a SageMaker endpoint, on AWS or the local gateway, with the same code.

Built on boto3's `sagemaker-runtime` client. Point it at the local gateway with `endpoint_url`
or the AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME environment variable that boto3 itself reads.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError, ParamValidationError

from . import storage
from .errors import ComposerError
from .polling import Wait, poll_until

if TYPE_CHECKING:
    from mypy_boto3_sagemaker_runtime import SageMakerRuntimeClient
    from mypy_boto3_sagemaker_runtime.type_defs import InvokeEndpointInputTypeDef

__all__ = [
    "AsyncInvocation",
    "AsyncInvocationFailed",
    "EndpointClient",
    "InternalFailure",
    "InvocationError",
    "InvokeResult",
    "ModelError",
    "ModelNotReady",
    "ServiceUnavailable",
    "ValidationError",
]


@dataclass(frozen=True)
class InvokeResult:
    """What an endpoint answered: the body and the headers boto3 exposes."""

    body: bytes
    content_type: str
    custom_attributes: str | None
    invoked_variant: str | None

    def text(self) -> str:
        return self.body.decode("utf-8")

    def json(self) -> Any:
        return json.loads(self.body)


class InvocationError(ComposerError):
    """An invocation that failed; `code` is SageMaker's error code (e.g. ModelError)."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        status_code: int | None = None,
        request_id: str | None = None,
        original_status_code: int | None = None,
        original_message: str | None = None,
        log_stream_arn: str | None = None,
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status_code = status_code
        self.request_id = request_id
        self.original_status_code = original_status_code
        self.original_message = original_message
        self.log_stream_arn = log_stream_arn


class ModelError(InvocationError):
    """A container answered 4xx/5xx, timed out, or could not be reached (HTTP 424)."""


class ValidationError(InvocationError):
    """The request was refused before any container saw it (HTTP 400)."""


class ServiceUnavailable(InvocationError):
    """HTTP 503."""


class InternalFailure(InvocationError):
    """HTTP 500 from the service (or the local gateway)."""


class ModelNotReady(InvocationError):
    """HTTP 429: the model is still loading (multi-model or serverless endpoints)."""


class AsyncInvocationFailed(InvocationError):
    """An asynchronous request failed; `message` is what the endpoint wrote to its failure
    location."""


@dataclass(frozen=True)
class AsyncInvocation:
    """An accepted asynchronous request: where its answer (or its error) will appear."""

    inference_id: str
    output_location: str
    failure_location: str | None

    @property
    def error_locations(self) -> list[str]:
        """Where an error may appear: the failure path, else beside the output (as SageMaker)."""
        beside = self.output_location.rsplit("/", 1)[0] + f"/{self.inference_id}-error.out"
        return [self.failure_location] if self.failure_location else [beside]


_BY_CODE: dict[str, type[InvocationError]] = {
    "ModelError": ModelError,
    "ValidationError": ValidationError,
    "ValidationException": ValidationError,
    "ServiceUnavailable": ServiceUnavailable,
    "InternalFailure": InternalFailure,
    "ModelNotReadyException": ModelNotReady,
}


def _from_client_error(e: ClientError) -> InvocationError:
    r: Any = e.response
    err = r.get("Error", {})
    code = str(err.get("Code") or "Unknown")
    meta = r.get("ResponseMetadata", {})
    original = r.get("OriginalStatusCode")
    return _BY_CODE.get(code, InvocationError)(
        code,
        str(err.get("Message") or r.get("Message") or ""),
        status_code=meta.get("HTTPStatusCode"),
        request_id=meta.get("RequestId"),
        original_status_code=int(original) if original is not None else None,
        original_message=r.get("OriginalMessage"),
        log_stream_arn=r.get("LogStreamArn"),
    )


@contextlib.contextmanager
def _translated() -> Iterator[None]:
    """botocore's failures as InvocationError subclasses carrying SageMaker's fields."""
    try:
        yield
    except ClientError as e:
        raise _from_client_error(e) from None
    except ParamValidationError as e:
        raise ValidationError("ParamValidationError", str(e)) from None
    except BotoCoreError as e:
        raise InvocationError(type(e).__name__, str(e)) from None


class EndpointClient:
    """One endpoint; `invoke` returns an InvokeResult or raises an InvocationError."""

    def __init__(
        self,
        endpoint_name: str,
        *,
        endpoint_url: str | None = None,
        region_name: str | None = None,
        client: SageMakerRuntimeClient | None = None,
    ) -> None:
        self.endpoint_name = endpoint_name
        if client is None:
            try:
                client = boto3.client(
                    "sagemaker-runtime", endpoint_url=endpoint_url, region_name=region_name
                )
            except BotoCoreError as e:
                raise InvocationError(
                    "ClientSetupError",
                    f"cannot create a sagemaker-runtime client: {e} (set AWS_REGION or pass "
                    "region_name)",
                ) from None
        self.client = client

    def invoke(
        self,
        body: bytes | str | dict[str, Any],
        target: str | None = None,
        content_type: str = "application/json",
        accept: str | None = None,
        custom_attributes: str | None = None,
        inference_id: str | None = None,
        target_model: str | None = None,
    ) -> InvokeResult:
        """InvokeEndpoint; a dict body is sent as JSON, a str as UTF-8.

        `target_model` picks the model of a multi-model container (its archive's path under
        the container's model data prefix, e.g. "en-rules.tar.gz").
        """
        if isinstance(body, dict):
            payload = json.dumps(body).encode()
        elif isinstance(body, str):
            payload = body.encode()
        else:
            payload = body
        params: InvokeEndpointInputTypeDef = {
            "EndpointName": self.endpoint_name,
            "Body": payload,
            "ContentType": content_type,
        }
        if target is not None:
            params["TargetContainerHostname"] = target
        if accept is not None:
            params["Accept"] = accept
        if custom_attributes is not None:
            params["CustomAttributes"] = custom_attributes
        if inference_id is not None:
            params["InferenceId"] = inference_id
        if target_model is not None:
            params["TargetModel"] = target_model
        with _translated():
            r = self.client.invoke_endpoint(**params)
        return InvokeResult(
            body=r["Body"].read(),
            content_type=r.get("ContentType", ""),
            custom_attributes=r.get("CustomAttributes"),
            invoked_variant=r.get("InvokedProductionVariant"),
        )

    def invoke_async(
        self,
        input_location: str,
        *,
        content_type: str | None = None,
        accept: str | None = None,
        custom_attributes: str | None = None,
        inference_id: str | None = None,
        request_ttl_seconds: int | None = None,
        invocation_timeout_seconds: int | None = None,
    ) -> AsyncInvocation:
        """InvokeEndpointAsync of the body stored at `input_location` (an s3:// URI; the
        local gateway also reads local paths); returns where the answer will be written."""
        params: dict[str, Any] = {
            "EndpointName": self.endpoint_name,
            "InputLocation": input_location,
        }
        optional = {
            "ContentType": content_type,
            "Accept": accept,
            "CustomAttributes": custom_attributes,
            "InferenceId": inference_id,
            "RequestTTLSeconds": request_ttl_seconds,
            "InvocationTimeoutSeconds": invocation_timeout_seconds,
        }
        params.update({k: v for k, v in optional.items() if v is not None})
        with _translated():
            r = self.client.invoke_endpoint_async(**params)
        return AsyncInvocation(
            inference_id=str(r.get("InferenceId", "")),
            output_location=str(r["OutputLocation"]),
            failure_location=r.get("FailureLocation"),
        )

    def wait_async(
        self,
        invocation: AsyncInvocation,
        *,
        timeout: float = 900.0,
        poll_interval: float = 1.0,
    ) -> InvokeResult:
        """Poll the output and failure locations until one appears; the answer, or
        AsyncInvocationFailed with the endpoint's error text. S3 goes through boto3's chain."""

        def timed_out(_: InvokeResult | None) -> InvocationError:
            return InvocationError(
                "AsyncTimeout",
                f"no answer at {invocation.output_location} after {timeout:.0f} s "
                f"(inference {invocation.inference_id}); it may still come",
            )

        result = poll_until(
            lambda: _async_answer(invocation),
            lambda answer: answer is not None,
            Wait(poll_interval, timeout),
            timed_out=timed_out,
        )
        assert result is not None
        return result


def _async_answer(invocation: AsyncInvocation) -> InvokeResult | None:
    """The answer if it is there yet; AsyncInvocationFailed if the error is."""
    try:
        if storage.exists(invocation.output_location):
            answer = storage.read_object(invocation.output_location)
            return InvokeResult(answer.data, answer.content_type, None, None)
        for location in invocation.error_locations:
            if storage.exists(location):
                text = storage.read(location).decode("utf-8", "replace")
                raise AsyncInvocationFailed("AsyncInvocationFailed", text)
    except storage.StorageError as e:
        raise InvocationError("StorageError", str(e)) from None
    return None
