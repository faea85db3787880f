"""boto3 clients for deploy, from the standard AWS chain (AWS_ENDPOINT_URL_* included)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import ComposerError

if TYPE_CHECKING:
    from mypy_boto3_application_autoscaling import ApplicationAutoScalingClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sagemaker import SageMakerClient


@dataclass(frozen=True)
class Clients:
    """One client per service deploy uses; tests build these from their own sessions."""

    sagemaker: SageMakerClient
    s3: S3Client
    autoscaling: ApplicationAutoScalingClient
    sts: Any
    region: str

    @classmethod
    def from_session(cls, session: Any) -> Clients:
        region = session.region_name
        if region is None:
            raise ComposerError("no AWS region configured")
        return cls(
            sagemaker=session.client("sagemaker"),
            s3=session.client("s3"),
            autoscaling=session.client("application-autoscaling"),
            sts=session.client("sts"),
            region=region,
        )


def session_region(region: str | None) -> str | None:
    """The region the standard chain gives (spec first); reads config only, calls nothing."""
    import boto3

    return region or boto3.Session().region_name


def create_clients(region: str) -> Clients:
    import boto3

    return Clients.from_session(boto3.Session(region_name=region))
