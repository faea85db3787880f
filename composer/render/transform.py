"""The CreateTransformJob request of `sm-compose transform --on-sagemaker`, as boto3 receives it.

The job runs the model deploy would create (its content-hashed name is given); its parameters
are the ones a local transform uses (`composer.batch.params.TransformOptions`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ..errors import UsageError
from ..sagemaker_facts import NAME_HELP, NAME_RULE
from ..spec.models import Pipeline
from ..storage import is_s3, parse_s3

if TYPE_CHECKING:
    from ..batch.params import TransformOptions


@dataclass(frozen=True)
class JobSettings:
    """Where the job reads and writes, and on what; options not given fall back to the spec."""

    input_uri: str
    output_uri: str
    job_name: str | None = None
    instance_type: str | None = None
    instance_count: int | None = None
    output_kms_key_id: str | None = None


def job_name(pipeline: Pipeline, now: datetime | None = None) -> str:
    """`{pipeline}-{UTC time}`, cut so it stays a valid 63-character name."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%d-%H%M%S")
    return f"{pipeline.name[: 63 - len(stamp) - 1].rstrip('-')}-{stamp}"


def _check_s3(option: str, uri: str) -> None:
    if not is_s3(uri):
        raise UsageError(
            f"{option}: got {uri!r}; a SageMaker transform job reads and writes S3 only "
            "(s3://BUCKET/PREFIX). Upload the input first, or drop --on-sagemaker to run locally"
        )
    parse_s3(uri)


def create_transform_job_request(
    pipeline: Pipeline, model_name: str, options: TransformOptions, settings: JobSettings
) -> dict[str, Any]:
    """Keyword arguments of CreateTransformJob; unset values are left to SageMaker."""
    _check_s3("--input", settings.input_uri)
    _check_s3("--output", settings.output_uri)
    spec = pipeline.transform
    name = settings.job_name or job_name(pipeline)
    if not NAME_RULE.fullmatch(name):
        raise UsageError(f"--job-name: got {name!r}; {NAME_HELP}")
    instance_type = (
        settings.instance_type
        or (spec.instance_type if spec is not None else None)
        or pipeline.endpoint.instance_type
    )
    instance_count = settings.instance_count or (spec.instance_count if spec is not None else 1)
    data_input: dict[str, Any] = {
        "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": settings.input_uri}},
        "CompressionType": options.compression,
        "SplitType": options.split_type,
    }
    if options.content_type is not None:
        data_input["ContentType"] = options.content_type
    data_output: dict[str, Any] = {
        "S3OutputPath": settings.output_uri,
        "AssembleWith": options.assemble_with,
    }
    if options.accept is not None:
        data_output["Accept"] = options.accept
    if settings.output_kms_key_id is not None:
        data_output["KmsKeyId"] = settings.output_kms_key_id
    request: dict[str, Any] = {"TransformJobName": name, "ModelName": model_name}
    if options.max_concurrent is not None:
        request["MaxConcurrentTransforms"] = options.max_concurrent
    if options.max_payload_mb is not None:
        request["MaxPayloadInMB"] = options.max_payload_mb
    if options.strategy is not None:
        request["BatchStrategy"] = options.strategy
    request["ModelClientConfig"] = {
        "InvocationsTimeoutInSeconds": options.invocations_timeout,
        "InvocationsMaxRetries": options.invocations_max_retries,
    }
    request["TransformInput"] = data_input
    request["TransformOutput"] = data_output
    request["TransformResources"] = {"InstanceType": instance_type, "InstanceCount": instance_count}
    if pipeline.aws.tags:
        request["Tags"] = [{"Key": k, "Value": v} for k, v in pipeline.aws.tags.items()]
    return request
