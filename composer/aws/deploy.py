"""The endpoint lifecycle on SageMaker: deploy, delete and status.

Names of models and endpoint configs are content hashes (`{pipeline}-{hash8}`), so deploy can
tell an unchanged pipeline (nothing to do) from a changed one (new model and config, then
UpdateEndpoint), and delete can find every leftover of a pipeline by name.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from rich.console import Console

from ..errors import ComposerError
from ..render.sagemaker import Requests, default_bucket
from ..spec.models import Pipeline
from . import autoscaling
from .clients import Clients
from .plan import DIGEST_METADATA, Plan, create_bucket_params

BUSY = {"Creating", "Updating", "SystemUpdating", "RollingBack", "Deleting"}
DEFAULT_POLL_INTERVAL = 15.0
DEFAULT_TIMEOUT = 3600.0


class DeployError(ComposerError):
    """AWS refused a call or the endpoint did not come up."""


class Reporter:
    """Messages and the waiting display, on stderr so stdout stays machine-readable."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True, highlight=False)

    def say(self, text: str) -> None:
        self.console.print(text, markup=False, soft_wrap=True)

    @contextmanager
    def waiting(self, what: str) -> Iterator[Callable[[str, float], None]]:
        seen: list[str] = []
        with self.console.status(f"{what}: waiting") as display:

            def update(status: str, elapsed: float) -> None:
                display.update(f"{what}: {status} ({elapsed:.0f} s)")
                if not seen or seen[-1] != status:
                    seen.append(status)
                    self.say(f"{what}: {status}")

            yield update


@dataclass
class Outcome:
    """What deploy or delete did, for messages and tests."""

    endpoint: str
    action: str = "none"
    uploaded: list[str] = field(default_factory=list)
    skipped_uploads: list[str] = field(default_factory=list)
    created: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    status: str | None = None


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _message(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Message", exc))


def _missing(exc: ClientError) -> bool:
    """SageMaker says ValidationException 'Could not find ...' for names that do not exist."""
    text = _message(exc).lower()
    return _code(exc) in {"ValidationException", "ValidationError"} and (
        "could not find" in text or "not found" in text or "does not exist" in text
    )


def aws_failure(what: str, exc: Exception) -> DeployError:
    if isinstance(exc, ClientError):
        return DeployError(f"{what}: {_code(exc)}: {_message(exc)}")
    return DeployError(f"{what}: {exc}")


def stale_name(pipeline: Pipeline) -> re.Pattern[str]:
    """Models and configs deploy names for this pipeline: `{name}-{8 hex}`."""
    return re.compile(rf"{re.escape(pipeline.name)}-[0-9a-f]{{8}}")


# --- reads ------------------------------------------------------------------------------------


def describe_endpoint(clients: Clients, name: str) -> dict[str, Any] | None:
    try:
        return dict(clients.sagemaker.describe_endpoint(EndpointName=name))
    except ClientError as exc:
        if _missing(exc):
            return None
        raise aws_failure(f"DescribeEndpoint {name}", exc) from None


def _describe_config(clients: Clients, name: str) -> dict[str, Any] | None:
    try:
        return dict(clients.sagemaker.describe_endpoint_config(EndpointConfigName=name))
    except ClientError as exc:
        if _missing(exc):
            return None
        raise aws_failure(f"DescribeEndpointConfig {name}", exc) from None


def model_exists(clients: Clients, name: str) -> bool:
    try:
        clients.sagemaker.describe_model(ModelName=name)
    except ClientError as exc:
        if _missing(exc):
            return False
        raise aws_failure(f"DescribeModel {name}", exc) from None
    return True


def _pipeline_names(clients: Clients, pipeline: Pipeline) -> tuple[list[str], list[str]]:
    """Models and endpoint configs named like this pipeline's."""
    rule = stale_name(pipeline)
    models: list[str] = []
    configs: list[str] = []
    for page in clients.sagemaker.get_paginator("list_models").paginate(NameContains=pipeline.name):
        models += [m["ModelName"] for m in page["Models"] if rule.fullmatch(m["ModelName"])]
    for cpage in clients.sagemaker.get_paginator("list_endpoint_configs").paginate(
        NameContains=pipeline.name
    ):
        configs += [
            c["EndpointConfigName"]
            for c in cpage["EndpointConfigs"]
            if rule.fullmatch(c["EndpointConfigName"])
        ]
    return sorted(set(models)), sorted(set(configs))


def _scalable_target(clients: Clients, resource: str) -> dict[str, Any] | None:
    found = clients.autoscaling.describe_scalable_targets(
        ServiceNamespace=autoscaling.NAMESPACE,
        ResourceIds=[resource],
        ScalableDimension=autoscaling.DIMENSION,
    )["ScalableTargets"]
    return dict(found[0]) if found else None


# --- deploy -----------------------------------------------------------------------------------


def ensure_bucket(plan: Plan, clients: Clients, reporter: Reporter) -> str:
    if plan.pipeline.aws.s3_bucket:
        return plan.pipeline.aws.s3_bucket
    try:
        account = str(clients.sts.get_caller_identity()["Account"])
    except (ClientError, BotoCoreError) as exc:
        raise aws_failure("GetCallerIdentity (to name the default bucket)", exc) from None
    bucket = default_bucket(clients.region, account)
    try:
        clients.s3.head_bucket(Bucket=bucket)
        return bucket
    except ClientError as exc:
        if _code(exc) not in {"404", "NoSuchBucket", "NotFound"}:
            raise aws_failure(f"HeadBucket {bucket}", exc) from None
    reporter.say(f"s3://{bucket}: creating SageMaker's default bucket")
    try:
        clients.s3.create_bucket(**create_bucket_params(bucket, clients.region))
    except ClientError as exc:
        if _code(exc) != "BucketAlreadyOwnedByYou":
            raise aws_failure(f"CreateBucket {bucket}", exc) from None
    return bucket


def _stored_digest(clients: Clients, bucket: str, key: str) -> tuple[bool, str | None]:
    """(whether the object exists, the sha256 deploy recorded on it if any)."""
    try:
        head = clients.s3.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if _code(exc) not in {"404", "NoSuchKey", "NotFound"}:
            raise aws_failure(f"HeadObject s3://{bucket}/{key}", exc) from None
        return False, None
    digest = head.get("Metadata", {}).get(DIGEST_METADATA)
    return True, str(digest) if digest is not None else None


def upload_model_data(
    plan: Plan, clients: Clients, bucket: str, outcome: Outcome, reporter: Reporter
) -> None:
    """Upload what S3 does not hold yet; refuse, before any upload, to replace a model archive.

    A multi-model archive keeps its key (its TargetModel). SageMaker's instances cache what
    they loaded, so it says never to overwrite one: a changed model needs a new name.
    """
    pending = []
    replaced = []
    for item in plan.uploads:
        url = f"s3://{bucket}/{item.key}"
        exists, digest = _stored_digest(clients, bucket, item.key)
        if digest == item.sha256:
            outcome.skipped_uploads.append(url)
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
        try:
            clients.s3.upload_file(
                str(item.archive),
                bucket,
                item.key,
                ExtraArgs={"Metadata": {DIGEST_METADATA: item.sha256}},
            )
        except (ClientError, BotoCoreError) as exc:
            raise aws_failure(f"upload to {url}", exc) from None
        outcome.uploaded.append(url)


def _create_missing(requests: Requests, clients: Clients, outcome: Outcome) -> None:
    sm = clients.sagemaker
    if not model_exists(clients, requests.model_name):
        try:
            sm.create_model(**requests.model)
        except ClientError as exc:
            raise aws_failure(f"CreateModel {requests.model_name}", exc) from None
        outcome.created.append(f"model {requests.model_name}")
    if _describe_config(clients, requests.endpoint_config_name) is None:
        try:
            sm.create_endpoint_config(**requests.endpoint_config)
        except ClientError as exc:
            raise aws_failure(
                f"CreateEndpointConfig {requests.endpoint_config_name}", exc
            ) from None
        outcome.created.append(f"endpoint config {requests.endpoint_config_name}")


def wait_for_endpoint(
    clients: Clients,
    name: str,
    reporter: Reporter,
    *,
    poll_interval: float = DEFAULT_POLL_INTERVAL,
    timeout: float = DEFAULT_TIMEOUT,
    gone: bool = False,
) -> dict[str, Any] | None:
    """Poll until the endpoint leaves the busy states (or, with `gone`, until it is deleted)."""
    start = time.monotonic()
    with reporter.waiting(name) as update:
        while True:
            described = describe_endpoint(clients, name)
            elapsed = time.monotonic() - start
            if described is None:
                update("deleted", elapsed)
                return None
            status = str(described["EndpointStatus"])
            update(status, elapsed)
            if status not in BUSY and not gone:
                return described
            if elapsed > timeout:
                raise DeployError(
                    f"{name}: still {status} after {timeout:.0f} s; see `sm-compose status` "
                    "(nothing was rolled back)"
                )
            time.sleep(poll_interval)


def _variants_to_release(
    clients: Clients, current_config: str | None, pipeline: Pipeline
) -> list[str]:
    """Variants whose scaling must be deregistered before UpdateEndpoint changes them.

    Application Auto Scaling makes SageMaker refuse an update that changes a scaled variant's
    instance type or removes it.
    """
    if current_config is None:
        return []
    described = _describe_config(clients, current_config)
    if described is None:
        return []
    release = []
    for v in described["ProductionVariants"]:
        name = v["VariantName"]
        same = (
            name == pipeline.endpoint.variant_name
            and v.get("InstanceType") == pipeline.endpoint.instance_type
        )
        if not same:
            release.append(name)
    return release


def _deregister(clients: Clients, resource: str, outcome: Outcome) -> None:
    if _scalable_target(clients, resource) is None:
        return
    try:
        clients.autoscaling.deregister_scalable_target(
            ServiceNamespace=autoscaling.NAMESPACE,
            ResourceId=resource,
            ScalableDimension=autoscaling.DIMENSION,
        )
    except ClientError as exc:
        if _code(exc) != "ObjectNotFoundException":
            raise aws_failure(f"DeregisterScalableTarget {resource}", exc) from None
        return
    outcome.deleted.append(f"scalable target {resource}")


def sync_autoscaling(pipeline: Pipeline, clients: Clients, outcome: Outcome) -> None:
    """Make the variant's scaling match the spec; calls nothing when it already does."""
    resource = autoscaling.resource_id(pipeline.name, pipeline.endpoint.variant_name)
    target = autoscaling.register_scalable_target_request(pipeline)
    policy = autoscaling.put_scaling_policy_request(pipeline)
    if target is None or policy is None:
        _deregister(clients, resource, outcome)
        return
    aas = clients.autoscaling
    try:
        existing = _scalable_target(clients, resource)
        if existing is None or (existing["MinCapacity"], existing["MaxCapacity"]) != (
            target["MinCapacity"],
            target["MaxCapacity"],
        ):
            aas.register_scalable_target(**target)
            outcome.created.append(f"scalable target {resource}")
        policies = aas.describe_scaling_policies(
            ServiceNamespace=autoscaling.NAMESPACE,
            ResourceId=resource,
            ScalableDimension=autoscaling.DIMENSION,
            PolicyNames=[policy["PolicyName"]],
        )["ScalingPolicies"]
        wanted = policy["TargetTrackingScalingPolicyConfiguration"]
        have = policies[0].get("TargetTrackingScalingPolicyConfiguration") if policies else None
        if have is None or any(have.get(k) != v for k, v in wanted.items()):
            aas.put_scaling_policy(**policy)
            outcome.created.append(f"scaling policy {policy['PolicyName']}")
    except ClientError as exc:
        raise aws_failure(f"autoscaling of {resource}", exc) from None


def _delete_model(clients: Clients, name: str, outcome: Outcome) -> None:
    try:
        clients.sagemaker.delete_model(ModelName=name)
    except ClientError as exc:
        if not _missing(exc):
            raise aws_failure(f"DeleteModel {name}", exc) from None
        return
    outcome.deleted.append(f"model {name}")


def _delete_config(clients: Clients, name: str, outcome: Outcome) -> None:
    try:
        clients.sagemaker.delete_endpoint_config(EndpointConfigName=name)
    except ClientError as exc:
        if not _missing(exc):
            raise aws_failure(f"DeleteEndpointConfig {name}", exc) from None
        return
    outcome.deleted.append(f"endpoint config {name}")


def cleanup_stale(
    pipeline: Pipeline, clients: Clients, keep: Requests | None, outcome: Outcome
) -> None:
    """Delete this pipeline's models and configs other than the ones in use."""
    models, configs = _pipeline_names(clients, pipeline)
    for config in configs:
        if keep is None or config != keep.endpoint_config_name:
            _delete_config(clients, config, outcome)
    for model in models:
        if keep is None or model != keep.model_name:
            _delete_model(clients, model, outcome)


def deploy(
    plan: Plan,
    clients: Clients,
    reporter: Reporter,
    *,
    wait: bool = True,
    poll_interval: float = DEFAULT_POLL_INTERVAL,
    timeout: float = DEFAULT_TIMEOUT,
) -> Outcome:
    pipeline = plan.pipeline
    name = pipeline.name
    outcome = Outcome(endpoint=name)
    bucket = ensure_bucket(plan, clients, reporter) if plan.needs_bucket else "unused"
    upload_model_data(plan, clients, bucket, outcome, reporter)
    requests = plan.requests(bucket)

    current = describe_endpoint(clients, name)
    current_config = str(current["EndpointConfigName"]) if current is not None else None
    status = str(current["EndpointStatus"]) if current is not None else None
    if current is not None and current_config == requests.endpoint_config_name:
        if status == "Failed":
            raise DeployError(
                f"{name}: Failed: {current.get('FailureReason', 'no reason given')}; run "
                "`sm-compose delete` and deploy again"
            )
        reporter.say(f"{name}: unchanged (endpoint config {current_config})")
        outcome.action = "unchanged"
    else:
        if status in BUSY:
            raise DeployError(
                f"{name}: the endpoint is {status}; wait until it is InService "
                "(`sm-compose status`) and deploy again"
            )
        if current is not None and status == "Failed":
            raise DeployError(
                f"{name}: the endpoint is Failed ({current.get('FailureReason', 'no reason')}) "
                "and SageMaker cannot update a failed endpoint; run `sm-compose delete` and "
                "deploy again"
            )
        _create_missing(requests, clients, outcome)
        try:
            if current is None:
                clients.sagemaker.create_endpoint(**requests.endpoint)
                outcome.action = "created"
                outcome.created.append(f"endpoint {name}")
            else:
                for variant in _variants_to_release(clients, current_config, pipeline):
                    _deregister(clients, autoscaling.resource_id(name, variant), outcome)
                clients.sagemaker.update_endpoint(
                    EndpointName=name, EndpointConfigName=requests.endpoint_config_name
                )
                outcome.action = "updated"
        except ClientError as exc:
            raise aws_failure(
                f"{'CreateEndpoint' if current is None else 'UpdateEndpoint'}", exc
            ) from None
        reporter.say(
            f"{name}: {outcome.action} with endpoint config {requests.endpoint_config_name}"
        )

    if not wait:
        outcome.status = status if outcome.action == "unchanged" else "Creating"
        reporter.say(
            f"{name}: not waiting; `sm-compose status` shows progress, and a later deploy "
            "finishes autoscaling and clean-up"
        )
        return outcome

    final = wait_for_endpoint(clients, name, reporter, poll_interval=poll_interval, timeout=timeout)
    if final is None:
        raise DeployError(f"{name}: the endpoint disappeared while waiting")
    outcome.status = str(final["EndpointStatus"])
    if outcome.status == "Failed":
        raise DeployError(f"{name}: Failed: {final.get('FailureReason', 'no reason given')}")
    if final.get("EndpointConfigName") != requests.endpoint_config_name:
        raise DeployError(
            f"{name}: the update did not take (SageMaker rolled back to "
            f"{final.get('EndpointConfigName')}): {final.get('FailureReason', 'no reason given')}"
        )
    sync_autoscaling(pipeline, clients, outcome)
    cleanup_stale(pipeline, clients, requests, outcome)
    return outcome


# --- delete and status ------------------------------------------------------------------------


def delete(
    pipeline: Pipeline,
    clients: Clients,
    reporter: Reporter,
    *,
    wait: bool = True,
    poll_interval: float = DEFAULT_POLL_INTERVAL,
    timeout: float = DEFAULT_TIMEOUT,
) -> Outcome:
    """Remove the endpoint, its scaling, its configs and models; what is gone already is fine."""
    name = pipeline.name
    outcome = Outcome(endpoint=name, action="deleted")
    current = describe_endpoint(clients, name)
    configs: set[str] = set()
    models: set[str] = set()
    variants = {pipeline.endpoint.variant_name}
    if current is not None:
        configs.add(str(current["EndpointConfigName"]))
        variants |= {v["VariantName"] for v in current.get("ProductionVariants", [])}
    for config in sorted(configs):
        described = _describe_config(clients, config)
        if described is not None:
            for v in described["ProductionVariants"]:
                models.add(v["ModelName"])
                variants.add(v["VariantName"])
    try:
        for variant in sorted(variants):
            _deregister(clients, autoscaling.resource_id(name, variant), outcome)
    except ClientError as exc:
        raise aws_failure("deregistering autoscaling", exc) from None
    if current is not None:
        try:
            clients.sagemaker.delete_endpoint(EndpointName=name)
            outcome.deleted.append(f"endpoint {name}")
        except ClientError as exc:
            if not _missing(exc):
                raise aws_failure(f"DeleteEndpoint {name}", exc) from None
        if wait:
            wait_for_endpoint(
                clients, name, reporter, poll_interval=poll_interval, timeout=timeout, gone=True
            )
    more_models, more_configs = _pipeline_names(clients, pipeline)
    for config in sorted(configs | set(more_configs)):
        _delete_config(clients, config, outcome)
    for model in sorted(models | set(more_models)):
        _delete_model(clients, model, outcome)
    if not outcome.deleted:
        outcome.action = "absent"
    return outcome


def status(pipeline: Pipeline, clients: Clients) -> dict[str, Any] | None:
    """A plain summary of the endpoint (None when it does not exist)."""
    current = describe_endpoint(clients, pipeline.name)
    if current is None:
        return None
    config = _describe_config(clients, str(current["EndpointConfigName"]))
    types = {v["VariantName"]: v for v in (config or {}).get("ProductionVariants", [])}
    variants = []
    for v in current.get("ProductionVariants", []):
        vname = v["VariantName"]
        entry: dict[str, Any] = {
            "name": vname,
            "model": types.get(vname, {}).get("ModelName"),
            "instance_type": types.get(vname, {}).get("InstanceType"),
            "current_instance_count": v.get("CurrentInstanceCount"),
            "desired_instance_count": v.get("DesiredInstanceCount"),
            "current_weight": v.get("CurrentWeight"),
        }
        try:
            target = _scalable_target(clients, autoscaling.resource_id(pipeline.name, vname))
        except ClientError:
            target = None
        if target is not None:
            entry["autoscaling"] = {"min": target["MinCapacity"], "max": target["MaxCapacity"]}
        variants.append(entry)
    summary: dict[str, Any] = {
        "endpoint": pipeline.name,
        "status": current["EndpointStatus"],
        "endpoint_config": current["EndpointConfigName"],
        "created": str(current.get("CreationTime", "")),
        "last_modified": str(current.get("LastModifiedTime", "")),
        "variants": variants,
    }
    if current.get("FailureReason"):
        summary["failure_reason"] = current["FailureReason"]
    return summary
