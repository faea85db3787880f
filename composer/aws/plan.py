"""Everything deploy checks and computes before its first AWS call.

`preflight` refuses what SageMaker would refuse (exit 2) and packs and hashes local model data,
so `--dry-run` and a real deploy start from the same plan and render the same requests.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..redaction import redact
from ..render.sagemaker import (
    PLACEHOLDER_ACCOUNT,
    Artifacts,
    Requests,
    default_bucket,
    model_data_key,
    models_prefix_key,
    placeholder_artifacts,
    render_requests,
)
from ..runners.modeldata import file_sha256
from ..sagemaker_facts import DEFAULT_REGION, check_target_model
from ..spec.models import Pipeline
from ..spec.rules import ARCHIVE_SUFFIXES, MAX_IMAGE_URI
from . import autoscaling
from .lockfile import lock_path, read_lock
from .packing import pack_folder

#: Metadata key holding the archive's sha256 on uploaded objects (x-amz-meta-sha256).
DIGEST_METADATA = "sha256"


@dataclass(frozen=True)
class LocalModelData:
    """A local archive deploy uploads (a folder is packed into `archive` first)."""

    hostname: str
    source: Path
    archive: Path
    sha256: str
    key: str
    #: One archive of a multi-model container's folder: its TargetModel (its path under the
    #: folder, and under the S3 prefix). Such objects are never overwritten (see deploy).
    target_model: str | None = None

    @property
    def size(self) -> int:
        return self.archive.stat().st_size


@dataclass(frozen=True)
class Plan:
    pipeline: Pipeline
    region: str
    role_arn: str
    images: dict[str, str]
    uploads: list[LocalModelData]
    #: Multi-model containers with a local folder: hostname -> key prefix of their archives.
    prefixes: dict[str, str] = field(default_factory=dict)

    def artifacts(self, bucket: str) -> Artifacts:
        urls: dict[str, str] = {}
        local = {u.hostname: u for u in self.uploads}
        for c in self.pipeline.containers:
            if c.hostname in self.prefixes:
                urls[c.hostname] = f"s3://{bucket}/{self.prefixes[c.hostname]}"
            elif c.hostname in local:
                urls[c.hostname] = f"s3://{bucket}/{local[c.hostname].key}"
            elif c.model_data is not None:
                urls[c.hostname] = c.model_data
        return Artifacts(images=dict(self.images), model_data_urls=urls, role_arn=self.role_arn)

    def requests(self, bucket: str) -> Requests:
        return render_requests(self.pipeline, self.artifacts(bucket))

    @property
    def needs_bucket(self) -> bool:
        return bool(self.uploads) or bool(self.prefixes)


def _role(pipeline: Pipeline) -> str:
    # The spec checks a role's form; it leaves the role optional, as only deploy needs one.
    role = pipeline.aws.role_arn
    if not role:
        raise UsageError(
            "aws.role_arn: missing; deploy needs the IAM role SageMaker assumes to pull images "
            "and model data (ExecutionRoleArn), e.g. "
            "arn:aws:iam::123456789012:role/SageMakerExecutionRole"
        )
    return role


def _images(pipeline: Pipeline, pipeline_file: str) -> dict[str, str]:
    lock_file = lock_path(pipeline.source) if pipeline.source is not None else None
    locked = read_lock(lock_file) if lock_file is not None else {}
    images: dict[str, str] = {}
    missing: list[str] = []
    for c in pipeline.containers:
        uri = c.image if c.image is not None else locked.get(c.hostname)
        if uri is None:
            missing.append(c.hostname)
            continue
        if len(uri) > MAX_IMAGE_URI:  # the spec checks image:, not what the lock file holds
            raise UsageError(
                f"containers.{c.hostname}: image URI of {len(uri)} characters; SageMaker "
                f"allows at most {MAX_IMAGE_URI}"
            )
        images[c.hostname] = uri
    if missing:
        where = lock_file if lock_file is not None else "the lock file"
        raise UsageError(
            f"no pushed image for build container(s) {', '.join(missing)} (nothing in {where}); "
            f"run `sm-compose push {pipeline_file}` first, or give an image: URI"
        )
    return images


def _cache_dir(pipeline: Pipeline) -> Path:
    return pipeline.state_dir / "modeldata"


def _local_model_data(pipeline: Pipeline) -> list[LocalModelData]:
    found: list[LocalModelData] = []
    for c in pipeline.containers:
        if c.model_data is None or c.model_data.startswith("s3://"):
            continue
        source = pipeline.resolve(c.model_data)
        if c.multi_model:
            found += _local_models(pipeline, c.hostname, c.model_data, source)
            continue
        if source.is_dir():
            archive = pack_folder(source, _cache_dir(pipeline) / f"{c.hostname}.tar.gz")
        elif source.is_file():
            archive = source
        else:  # the spec saw it when it was loaded; it has gone since
            raise UsageError(
                f"containers.{c.hostname}.model_data: got {c.model_data!r}, which does not "
                f"exist (looked at {source})"
            )
        digest = file_sha256(archive)
        key = model_data_key(pipeline, c.hostname, digest)
        found.append(LocalModelData(c.hostname, source, archive, digest, key))
    return found


def _local_models(
    pipeline: Pipeline, hostname: str, given: str, folder: Path
) -> list[LocalModelData]:
    """Each archive under a multi-model container's folder, keyed by its path under it."""
    where = f"containers.{hostname}.model_data"
    if not folder.is_dir():  # the spec saw a folder when it was loaded; it has gone since
        raise UsageError(
            f"{where}: got {given!r}, which is not a folder (looked at {folder}); a multi-model "
            "container's model_data is a folder of .tar.gz archives or an s3:// prefix"
        )
    prefix = models_prefix_key(pipeline, hostname)
    found: list[LocalModelData] = []
    archives = sorted(
        p for p in folder.rglob("*") if p.name.endswith(ARCHIVE_SUFFIXES) and p.is_file()
    )
    for archive in archives:
        target = archive.relative_to(folder).as_posix()
        why = check_target_model(target)
        if why is not None:
            raise UsageError(
                f"{where}: {archive}: its path under {given!r}, {target!r}, is its TargetModel: "
                f"{why}; rename it"
            )
        digest = file_sha256(archive)
        found.append(LocalModelData(hostname, archive, archive, digest, prefix + target, target))
    return found


def local_prefixes(pipeline: Pipeline) -> dict[str, str]:
    """Key prefixes of multi-model containers whose model data is a local folder."""
    return {
        c.hostname: models_prefix_key(pipeline, c.hostname)
        for c in pipeline.containers
        if c.multi_model and c.model_data is not None and not c.model_data.startswith("s3://")
    }


def preflight(pipeline: Pipeline, pipeline_file: str, region: str | None) -> Plan:
    """The plan, or a UsageError for anything SageMaker would refuse; makes no AWS call."""
    role = _role(pipeline)
    images = _images(pipeline, pipeline_file)
    if region is None:
        raise UsageError(
            "no AWS region: set aws.region in the pipeline, or AWS_REGION / AWS_DEFAULT_REGION, "
            "or a region in your AWS profile"
        )
    # Names carry a hash suffix; rendering once refuses names that grow past 63 characters.
    render_requests(pipeline, placeholder_artifacts(pipeline))
    uploads = _local_model_data(pipeline)
    return Plan(pipeline, region, role, images, uploads, local_prefixes(pipeline))


def dry_run_document(plan: Plan) -> dict[str, Any]:
    """Every call deploy would make, in order, with the exact parameters (secrets redacted)."""
    pipeline = plan.pipeline
    bucket = pipeline.aws.s3_bucket
    placeholders: dict[str, str] = {}
    calls: list[dict[str, Any]] = []
    if plan.needs_bucket and bucket is None:
        bucket = default_bucket(plan.region, PLACEHOLDER_ACCOUNT)
        placeholders[PLACEHOLDER_ACCOUNT] = (
            "your AWS account id: deploy asks STS (GetCallerIdentity) for it"
        )
        calls.append({"service": "sts", "operation": "GetCallerIdentity", "params": {}})
        calls.append(
            {
                "service": "s3",
                "operation": "CreateBucket",
                "when": "only if the default bucket does not exist yet",
                "params": create_bucket_params(bucket, plan.region),
            }
        )
    for upload in plan.uploads:
        when = f"only if s3://{bucket}/{upload.key} does not hold this sha256 yet"
        if upload.target_model is not None:
            when += (
                f" (TargetModel {upload.target_model!r}; deploy stops, uploading nothing, if "
                "it holds another version: a multi-model archive is never overwritten)"
            )
        calls.append(
            {
                "service": "s3",
                "operation": "PutObject",
                "when": when,
                "file": str(upload.archive),
                "bytes": upload.size,
                "params": {
                    "Bucket": bucket,
                    "Key": upload.key,
                    "Metadata": {DIGEST_METADATA: upload.sha256},
                },
            }
        )
    requests = plan.requests(bucket or "unused")
    calls += [
        {
            "service": "sagemaker",
            "operation": "CreateModel",
            "when": "only if no model has this name",
            "params": requests.model,
        },
        {
            "service": "sagemaker",
            "operation": "CreateEndpointConfig",
            "when": "only if no endpoint config has this name",
            "params": requests.endpoint_config,
        },
        {
            "service": "sagemaker",
            "operation": "CreateEndpoint",
            "when": (
                "if the endpoint does not exist; else UpdateEndpoint with EndpointName and "
                "EndpointConfigName, or nothing when it already uses this config"
            ),
            "params": requests.endpoint,
        },
    ]
    target = autoscaling.register_scalable_target_request(pipeline)
    policy = autoscaling.put_scaling_policy_request(pipeline)
    if target is not None and policy is not None:
        calls += [
            {
                "service": "application-autoscaling",
                "operation": "RegisterScalableTarget",
                "when": "once InService, unless already registered with these capacities",
                "params": target,
            },
            {
                "service": "application-autoscaling",
                "operation": "PutScalingPolicy",
                "when": "once InService, unless this policy is already there",
                "params": policy,
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


def create_bucket_params(bucket: str, region: str) -> dict[str, Any]:
    params: dict[str, Any] = {"Bucket": bucket}
    if region != DEFAULT_REGION:
        params["CreateBucketConfiguration"] = {"LocationConstraint": region}
    return params
