"""EndpointClient: invoke a SageMaker endpoint, on AWS or the local gateway, with the same code.

Built on boto3's `sagemaker-runtime` client. Point it at the local gateway with `endpoint_url`
or the AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME environment variable that boto3 itself reads.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError, ParamValidationError

from .errors import ComposerError

if TYPE_CHECKING:
    from mypy_boto3_sagemaker_runtime import SageMakerRuntimeClient
    from mypy_boto3_sagemaker_runtime.type_defs import InvokeEndpointInputTypeDef

__all__ = [
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
    ) -> InvokeResult:
        """InvokeEndpoint; a dict body is sent as JSON, a str as UTF-8."""
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
        try:
            r = self.client.invoke_endpoint(**params)
        except ClientError as e:
            raise _from_client_error(e) from None
        except ParamValidationError as e:
            raise ValidationError("ParamValidationError", str(e)) from None
        except BotoCoreError as e:
            raise InvocationError(type(e).__name__, str(e)) from None
        return InvokeResult(
            body=r["Body"].read(),
            content_type=r.get("ContentType", ""),
            custom_attributes=r.get("CustomAttributes"),
            invoked_variant=r.get("InvokedProductionVariant"),
        )
