"""The pipeline's SageMaker model and what it needs first: a bucket and the model data in it.

Deploy and `transform --on-sagemaker` both run the model named by the content hash of its
CreateModel request, made here the same way for both.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from botocore.exceptions import ClientError

from ..render.sagemaker import Requests, default_bucket
from ..storage import MISSING
from .calls import DeployError, aws_failure, calling, describe, error_code
from .clients import Clients
from .plan import DIGEST_METADATA, Plan, create_bucket_params
from .report import Reporter


@dataclass
class Uploads:
    """What `upload_model_data` did, as s3:// URLs."""

    uploaded: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def ensure_bucket(plan: Plan, clients: Clients, reporter: Reporter) -> str:
    """`aws.s3_bucket`, or SageMaker's default bucket, created when missing."""
    if plan.pipeline.aws.s3_bucket:
        return plan.pipeline.aws.s3_bucket
    with calling("GetCallerIdentity (to name the default bucket)", unreachable=True):
        account = str(clients.sts.get_caller_identity()["Account"])
    bucket = default_bucket(clients.region, account)
    try:
        clients.s3.head_bucket(Bucket=bucket)
        return bucket
    except ClientError as exc:
        if error_code(exc) not in {"404", "NoSuchBucket", "NotFound"}:
            raise aws_failure(f"HeadBucket {bucket}", exc) from None
    reporter.say(f"s3://{bucket}: creating SageMaker's default bucket")
    try:
        clients.s3.create_bucket(**create_bucket_params(bucket, clients.region))
    except ClientError as exc:
        if error_code(exc) != "BucketAlreadyOwnedByYou":
            raise aws_failure(f"CreateBucket {bucket}", exc) from None
    return bucket


def model_bucket(plan: Plan, clients: Clients, reporter: Reporter) -> str:
    """The bucket of the plan's model data ("unused" when nothing is uploaded)."""
    return ensure_bucket(plan, clients, reporter) if plan.needs_bucket else "unused"


def _stored_digest(clients: Clients, bucket: str, key: str) -> tuple[bool, str | None]:
    """(whether the object exists, the sha256 deploy recorded on it if any)."""
    try:
        head = clients.s3.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if error_code(exc) not in MISSING:
            raise aws_failure(f"HeadObject s3://{bucket}/{key}", exc) from None
        return False, None
    digest = head.get("Metadata", {}).get(DIGEST_METADATA)
    return True, str(digest) if digest is not None else None


def upload_model_data(plan: Plan, clients: Clients, bucket: str, reporter: Reporter) -> Uploads:
    """Upload what S3 does not hold yet; refuse, before any upload, to replace a model archive.

    A multi-model archive keeps its key (its TargetModel). SageMaker's instances cache what
    they loaded, so it says never to overwrite one: a changed model needs a new name.
    """
    done = Uploads()
    pending = []
    replaced = []
    for item in plan.uploads:
        url = f"s3://{bucket}/{item.key}"
        exists, digest = _stored_digest(clients, bucket, item.key)
        if digest == item.sha256:
            done.skipped.append(url)
            reporter.say(f"{item.hostname}: model data already at {url}")
        elif exists and item.target_model is not None:
            replaced.append(f"{item.archive} (TargetModel {item.target_model!r}, at {url})")
        else:
            pending.append(item)
    if replaced:
        raise DeployError(
            "a multi-model archive changed but keeps its name: "
            + "; ".join(replaced)
            + ". SageMaker says not to overwrite a multi-model endpoint's archives (instances "
            "keep serving the version they cached): give the new version a new file name, "
            "such as NAME-v2.tar.gz, and invoke that TargetModel. Nothing was uploaded"
        )
    for item in pending:
        url = f"s3://{bucket}/{item.key}"
        reporter.say(f"{item.hostname}: uploading {item.archive} ({item.size} bytes) to {url}")
        with calling(f"upload to {url}", unreachable=True):
            clients.s3.upload_file(
                str(item.archive),
                bucket,
                item.key,
                ExtraArgs={"Metadata": {DIGEST_METADATA: item.sha256}},
            )
        done.uploaded.append(url)
    return done


def model_exists(clients: Clients, name: str) -> bool:
    found = describe(
        f"DescribeModel {name}", lambda: clients.sagemaker.describe_model(ModelName=name)
    )
    return found is not None


def create_model(clients: Clients, requests: Requests) -> None:
    with calling(f"CreateModel {requests.model_name}"):
        clients.sagemaker.create_model(**requests.model)
