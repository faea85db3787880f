"""`sm-compose transform --on-sagemaker`: the pipeline's model as a SageMaker batch transform job.

The job runs the model deploy would create (the same content-hashed name from
`render_requests`); when no such model exists yet it is created the way deploy creates it
(model data uploaded first). The job's parameters are the ones a local transform uses.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from ..batch.params import TransformOptions
from ..batch.storage import is_s3, parse_s3
from ..errors import UsageError
from ..redaction import redact
from ..render.sagemaker import PLACEHOLDER_ACCOUNT, default_bucket
from ..sagemaker_facts import NAME_HELP, NAME_RULE
from ..spec.models import Pipeline
from .clients import Clients
from .deploy import (
    DeployError,
    Outcome,
    Reporter,
    aws_failure,
    ensure_bucket,
    model_exists,
    upload_model_data,
)
from .plan import Plan

DONE = {"Completed", "Failed", "Stopped"}
DEFAULT_POLL_INTERVAL = 30.0
DEFAULT_TIMEOUT = 6 * 3600.0


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


def transform_job_request(
    pipeline: Pipeline, model_name: str, options: TransformOptions, settings: JobSettings
) -> dict[str, Any]:
    """Keyword arguments of CreateTransformJob; unset values are left to SageMaker."""
    pipeline.check_batch_transform()
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


def dry_run_document(
    plan: Plan, options: TransformOptions, settings: JobSettings
) -> dict[str, Any]:
    """The model the job would use and the CreateTransformJob request; calls nothing."""
    pipeline = plan.pipeline
    placeholders: dict[str, str] = {}
    bucket = pipeline.aws.s3_bucket
    if plan.needs_bucket and bucket is None:
        bucket = default_bucket(plan.region, PLACEHOLDER_ACCOUNT)
        placeholders[PLACEHOLDER_ACCOUNT] = (
            "your AWS account id (the model name depends on the model data's bucket)"
        )
    requests = plan.requests(bucket or "unused")
    calls = [
        {
            "service": "sagemaker",
            "operation": "CreateModel",
            "when": "only if no model has this name (deploy creates the same one)",
            "params": requests.model,
        },
        {
            "service": "sagemaker",
            "operation": "CreateTransformJob",
            "params": transform_job_request(pipeline, requests.model_name, options, settings),
        },
    ]
    document: dict[str, Any] = redact(
        {
            "pipeline": pipeline.name,
            "region": plan.region,
            "placeholders": placeholders,
            "calls": calls,
        }
    )
    return document


def ensure_model(plan: Plan, clients: Clients, reporter: Reporter) -> str:
    """The name of the pipeline's model on SageMaker, created (as deploy would) if missing."""
    bucket = ensure_bucket(plan, clients, reporter) if plan.needs_bucket else "unused"
    requests = plan.requests(bucket)
    name = requests.model_name
    if model_exists(clients, name):
        reporter.say(f"model {name}: found")
        return name
    upload_model_data(plan, clients, bucket, Outcome(endpoint=plan.pipeline.name), reporter)
    try:
        clients.sagemaker.create_model(**requests.model)
    except ClientError as exc:
        raise aws_failure(f"CreateModel {name}", exc) from None
    reporter.say(f"model {name}: created")
    return name


def describe_job(clients: Clients, name: str) -> dict[str, Any]:
    try:
        return dict(clients.sagemaker.describe_transform_job(TransformJobName=name))
    except ClientError as exc:
        raise aws_failure(f"DescribeTransformJob {name}", exc) from None


def wait_for_job(
    clients: Clients,
    name: str,
    reporter: Reporter,
    *,
    poll_interval: float = DEFAULT_POLL_INTERVAL,
    timeout: float = DEFAULT_TIMEOUT,
) -> dict[str, Any]:
    """Poll DescribeTransformJob until the job ends; a failed or stopped job raises."""
    start = time.monotonic()
    with reporter.waiting(f"transform job {name}") as update:
        while True:
            described = describe_job(clients, name)
            status = str(described["TransformJobStatus"])
            elapsed = time.monotonic() - start
            update(status, elapsed)
            if status in DONE:
                break
            if elapsed > timeout:
                raise DeployError(
                    f"transform job {name}: still {status} after {timeout:.0f} s; it keeps "
                    "running (stop it with aws sagemaker stop-transform-job)"
                )
            time.sleep(poll_interval)
    if status != "Completed":
        reason = described.get("FailureReason", "no reason given")
        raise DeployError(f"transform job {name}: {status}: {reason}")
    return described


def run_transform_job(
    plan: Plan,
    options: TransformOptions,
    settings: JobSettings,
    clients: Clients,
    reporter: Reporter,
    *,
    wait: bool = True,
    poll_interval: float = DEFAULT_POLL_INTERVAL,
    timeout: float = DEFAULT_TIMEOUT,
) -> dict[str, Any]:
    """Create the job (and the model if needed); return its last description."""
    plan.pipeline.check_batch_transform()
    model = ensure_model(plan, clients, reporter)
    request = transform_job_request(plan.pipeline, model, options, settings)
    name = request["TransformJobName"]
    try:
        clients.sagemaker.create_transform_job(**request)
    except ClientError as exc:
        raise aws_failure(f"CreateTransformJob {name}", exc) from None
    reporter.say(f"transform job {name}: created (model {model})")
    if not wait:
        return describe_job(clients, name)
    return wait_for_job(clients, name, reporter, poll_interval=poll_interval, timeout=timeout)
