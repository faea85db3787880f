"""SageMaker control-plane request documents, exactly as boto3's create_* calls receive them.

The same functions feed `sm-compose build` (files to read and diff), `deploy` (the real calls) and
`export` (CloudFormation), so what a user reviews is what is sent.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from ..errors import UsageError
from ..sagemaker_facts import DEFAULT_REGION
from ..spec.models import Pipeline

#: Account id used in URIs that deploy has not resolved yet (images not pushed, default bucket).
PLACEHOLDER_ACCOUNT = "000000000000"
#: Role used in rendered documents when the spec sets no aws.role_arn; deploy refuses it.
PLACEHOLDER_ROLE = f"arn:aws:iam::{PLACEHOLDER_ACCOUNT}:role/REPLACE-WITH-SAGEMAKER-EXECUTION-ROLE"
PLACEHOLDER_TAG = "unpushed"
HASH_LENGTH = 8
MAX_NAME = 63


@dataclass(frozen=True)
class Artifacts:
    """What deploy resolves before calling AWS: images, model data URLs, role."""

    images: dict[str, str]
    model_data_urls: dict[str, str] = field(default_factory=dict)
    role_arn: str = PLACEHOLDER_ROLE


@dataclass(frozen=True)
class Requests:
    """Keyword arguments of create_model, create_endpoint_config and create_endpoint."""

    model: dict[str, Any]
    endpoint_config: dict[str, Any]
    endpoint: dict[str, Any]

    @property
    def model_name(self) -> str:
        return str(self.model["ModelName"])

    @property
    def endpoint_config_name(self) -> str:
        return str(self.endpoint_config["EndpointConfigName"])


def region_of(pipeline: Pipeline) -> str:
    return pipeline.aws.region or DEFAULT_REGION


def image_repository(pipeline: Pipeline, hostname: str) -> str:
    """Images are named <ecr prefix>-<hostname>, one repository per container."""
    return f"{pipeline.aws.ecr_repository_prefix}-{hostname}"


def default_bucket(region: str, account: str) -> str:
    """SageMaker's own default bucket convention."""
    return f"sagemaker-{region}-{account}"


def model_data_key(pipeline: Pipeline, hostname: str, digest: str | None = None) -> str:
    parts = [pipeline.aws.s3_prefix.strip("/"), pipeline.name, hostname]
    if digest:
        parts.append(digest[:16])
    return "/".join(p for p in parts if p) + "/model.tar.gz"


def models_prefix_key(pipeline: Pipeline, hostname: str) -> str:
    """Where a multi-model container's local archives go: one fixed prefix, ending in `/`.

    Fixed, not content-hashed: the prefix is the ModelDataUrl, so adding an archive changes
    neither the model nor the endpoint; a new archive is live as soon as it is uploaded, which
    is how SageMaker adds models to a multi-model endpoint.
    """
    parts = [pipeline.aws.s3_prefix.strip("/"), pipeline.name, hostname, "models"]
    return "/".join(p for p in parts if p) + "/"


def as_prefix(uri: str) -> str:
    """An S3 prefix as ModelDataUrl: SageMaker appends TargetModel to it, so it ends in `/`."""
    return uri if uri.endswith("/") else uri + "/"


def placeholder_artifacts(pipeline: Pipeline, tags: dict[str, str] | None = None) -> Artifacts:
    """Artifacts for documents rendered before anything is pushed or uploaded.

    `tags` maps hostname to an image tag (the build context's content hash) where known.
    """
    region = region_of(pipeline)
    registry = f"{PLACEHOLDER_ACCOUNT}.dkr.ecr.{region}.amazonaws.com"
    images: dict[str, str] = {}
    urls: dict[str, str] = {}
    bucket = pipeline.aws.s3_bucket or default_bucket(region, PLACEHOLDER_ACCOUNT)
    for c in pipeline.containers:
        if c.image is not None:
            images[c.hostname] = c.image
        else:
            tag = (tags or {}).get(c.hostname, PLACEHOLDER_TAG)
            images[c.hostname] = f"{registry}/{image_repository(pipeline, c.hostname)}:{tag}"
        if c.model_data is not None:
            if c.model_data.startswith("s3://"):
                urls[c.hostname] = c.model_data
            elif c.multi_model:
                urls[c.hostname] = f"s3://{bucket}/{models_prefix_key(pipeline, c.hostname)}"
            else:
                urls[c.hostname] = f"s3://{bucket}/{model_data_key(pipeline, c.hostname)}"
    return Artifacts(
        images=images, model_data_urls=urls, role_arn=pipeline.aws.role_arn or PLACEHOLDER_ROLE
    )


def is_placeholder_image(uri: str) -> bool:
    return uri.startswith(f"{PLACEHOLDER_ACCOUNT}.dkr.ecr.")


def _content_hash(document: dict[str, Any]) -> str:
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(canonical).hexdigest()[:HASH_LENGTH]


def _hashed_name(base: str, document: dict[str, Any], what: str) -> str:
    name = f"{base}-{_content_hash(document)}"
    if len(name) > MAX_NAME:
        room = MAX_NAME - HASH_LENGTH - 1
        raise UsageError(
            f"name: got {base!r} ({len(base)} characters); the {what} name adds a "
            f"{HASH_LENGTH + 1}-character hash suffix, so the pipeline name may have at most "
            f"{room} characters"
        )
    return name


def _tags(pipeline: Pipeline) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in pipeline.aws.tags.items()]


def container_definitions(pipeline: Pipeline, artifacts: Artifacts) -> list[dict[str, Any]]:
    definitions = []
    for c in pipeline.containers:
        d: dict[str, Any] = {"ContainerHostname": c.hostname, "Image": artifacts.images[c.hostname]}
        if c.multi_model:
            d["Mode"] = "MultiModel"
        d["Environment"] = c.model_env
        if c.hostname in artifacts.model_data_urls:
            url = artifacts.model_data_urls[c.hostname]
            d["ModelDataUrl"] = as_prefix(url) if c.multi_model else url
        definitions.append(d)
    return definitions


def create_model_request(pipeline: Pipeline, artifacts: Artifacts) -> dict[str, Any]:
    body: dict[str, Any] = {}
    definitions = container_definitions(pipeline, artifacts)
    if pipeline.is_multi_container:
        body["Containers"] = definitions
        body["InferenceExecutionConfig"] = {"Mode": pipeline.mode}
    else:
        body["PrimaryContainer"] = definitions[0]
    body["ExecutionRoleArn"] = artifacts.role_arn
    vpc = pipeline.aws.vpc_config
    if vpc is not None:
        body["VpcConfig"] = {"SecurityGroupIds": vpc.security_group_ids, "Subnets": vpc.subnets}
    if pipeline.aws.enable_network_isolation is not None:
        body["EnableNetworkIsolation"] = pipeline.aws.enable_network_isolation
    name = _hashed_name(pipeline.name, body, "model")
    request = {"ModelName": name, **body}
    if pipeline.aws.tags:
        request["Tags"] = _tags(pipeline)
    return request


def create_endpoint_config_request(pipeline: Pipeline, model_name: str) -> dict[str, Any]:
    ep = pipeline.endpoint
    variant: dict[str, Any] = {
        "VariantName": ep.variant_name,
        "ModelName": model_name,
        "InstanceType": ep.instance_type,
        "InitialInstanceCount": ep.instance_count,
        "InitialVariantWeight": 1.0,
    }
    if ep.startup_health_check_timeout is not None:
        variant["ContainerStartupHealthCheckTimeoutInSeconds"] = ep.startup_health_check_timeout
    body: dict[str, Any] = {"ProductionVariants": [variant]}
    if ep.kms_key_id is not None:
        body["KmsKeyId"] = ep.kms_key_id
    if ep.data_capture is not None:
        dc = ep.data_capture
        body["DataCaptureConfig"] = {
            "EnableCapture": True,
            "InitialSamplingPercentage": dc.sampling_percentage,
            "DestinationS3Uri": dc.destination,
            "CaptureOptions": [{"CaptureMode": mode} for mode in dc.capture],
        }
    if pipeline.async_inference is not None:
        body["AsyncInferenceConfig"] = async_inference_config(pipeline)
    name = _hashed_name(pipeline.name, body, "endpoint config")
    request = {"EndpointConfigName": name, **body}
    if pipeline.aws.tags:
        request["Tags"] = _tags(pipeline)
    return request


def async_inference_config(pipeline: Pipeline) -> dict[str, Any]:
    spec = pipeline.async_inference
    assert spec is not None
    output: dict[str, Any] = {"S3OutputPath": spec.output_path}
    if spec.failure_path is not None:
        output["S3FailurePath"] = spec.failure_path
    topics = {}
    if spec.success_topic is not None:
        topics["SuccessTopic"] = spec.success_topic
    if spec.error_topic is not None:
        topics["ErrorTopic"] = spec.error_topic
    if topics:
        output["NotificationConfig"] = topics
    if spec.kms_key_id is not None:
        output["KmsKeyId"] = spec.kms_key_id
    config: dict[str, Any] = {"OutputConfig": output}
    if spec.max_concurrent_invocations_per_instance is not None:
        config["ClientConfig"] = {
            "MaxConcurrentInvocationsPerInstance": spec.max_concurrent_invocations_per_instance
        }
    return config


def create_endpoint_request(pipeline: Pipeline, endpoint_config_name: str) -> dict[str, Any]:
    request: dict[str, Any] = {
        "EndpointName": pipeline.name,
        "EndpointConfigName": endpoint_config_name,
    }
    if pipeline.aws.tags:
        request["Tags"] = _tags(pipeline)
    return request


def render_requests(pipeline: Pipeline, artifacts: Artifacts) -> Requests:
    model = create_model_request(pipeline, artifacts)
    config = create_endpoint_config_request(pipeline, model["ModelName"])
    endpoint = create_endpoint_request(pipeline, config["EndpointConfigName"])
    return Requests(model=model, endpoint_config=config, endpoint=endpoint)


def dumps(document: dict[str, Any]) -> str:
    """Stable JSON text: byte-identical for the same document."""
    return json.dumps(document, indent=2, sort_keys=False, ensure_ascii=False) + "\n"
