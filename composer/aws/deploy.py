"""The endpoint lifecycle on SageMaker: deploy, delete and status.

Names of models and endpoint configs are content hashes (`{pipeline}-{hash8}`), so deploy can
tell an unchanged pipeline (nothing to do) from a changed one (new model and config, then
UpdateEndpoint), and delete can find every leftover of a pipeline by name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from ..polling import Wait, poll_until
from ..render.sagemaker import Requests
from ..spec.models import Pipeline
from . import autoscaling
from .calls import DeployError, aws_failure, calling, delete_if_present, describe, error_code
from .clients import Clients
from .model import create_model, model_bucket, model_exists, upload_model_data
from .plan import Plan
from .report import Reporter

BUSY = {"Creating", "Updating", "SystemUpdating", "RollingBack", "Deleting"}
#: DescribeEndpoint every 15 s for at most an hour (the CLI's defaults).
ENDPOINT_WAIT = Wait(interval=15.0, timeout=3600.0)


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


def stale_name(pipeline: Pipeline) -> re.Pattern[str]:
    """Models and configs deploy names for this pipeline: `{name}-{8 hex}`."""
    return re.compile(rf"{re.escape(pipeline.name)}-[0-9a-f]{{8}}")


# --- reads ------------------------------------------------------------------------------------


def describe_endpoint(clients: Clients, name: str) -> dict[str, Any] | None:
    return describe(
        f"DescribeEndpoint {name}", lambda: clients.sagemaker.describe_endpoint(EndpointName=name)
    )


def _describe_config(clients: Clients, name: str) -> dict[str, Any] | None:
    return describe(
        f"DescribeEndpointConfig {name}",
        lambda: clients.sagemaker.describe_endpoint_config(EndpointConfigName=name),
    )


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


# --- deploy ---------------------------------------------------------------------------------


def _create_missing(requests: Requests, clients: Clients, outcome: Outcome) -> None:
    if not model_exists(clients, requests.model_name):
        create_model(clients, requests)
        outcome.created.append(f"model {requests.model_name}")
    if _describe_config(clients, requests.endpoint_config_name) is None:
        with calling(f"CreateEndpointConfig {requests.endpoint_config_name}"):
            clients.sagemaker.create_endpoint_config(**requests.endpoint_config)
        outcome.created.append(f"endpoint config {requests.endpoint_config_name}")


def _endpoint_status(described: dict[str, Any] | None) -> str:
    return "deleted" if described is None else str(described["EndpointStatus"])


def wait_for_endpoint(
    clients: Clients,
    name: str,
    reporter: Reporter,
    wait: Wait = ENDPOINT_WAIT,
    *,
    gone: bool = False,
) -> dict[str, Any] | None:
    """Poll until the endpoint leaves the busy states (or, with `gone`, until it is deleted)."""

    def done(described: dict[str, Any] | None) -> bool:
        return described is None or (not gone and _endpoint_status(described) not in BUSY)

    def timed_out(described: dict[str, Any] | None) -> DeployError:
        return DeployError(
            f"{name}: still {_endpoint_status(described)} after {wait.timeout:.0f} s; see "
            "`sm-compose status` (nothing was rolled back)"
        )

    with reporter.waiting(name) as update:
        return poll_until(
            lambda: describe_endpoint(clients, name),
            done,
            wait,
            timed_out=timed_out,
            on_poll=lambda described, elapsed: update(_endpoint_status(described), elapsed),
        )


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
        if error_code(exc) != "ObjectNotFoundException":
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
    with calling(f"autoscaling of {resource}"):
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


def _delete_model(clients: Clients, name: str, outcome: Outcome) -> None:
    sm = clients.sagemaker
    if delete_if_present(f"DeleteModel {name}", lambda: sm.delete_model(ModelName=name)):
        outcome.deleted.append(f"model {name}")


def _delete_config(clients: Clients, name: str, outcome: Outcome) -> None:
    sm = clients.sagemaker
    if delete_if_present(
        f"DeleteEndpointConfig {name}",
        lambda: sm.delete_endpoint_config(EndpointConfigName=name),
    ):
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
    wait: Wait | None = ENDPOINT_WAIT,
) -> Outcome:
    """Upload model data, create or update the endpoint; with `wait`, wait for it, then make
    its scaling match and delete this pipeline's older models and configs."""
    pipeline = plan.pipeline
    name = pipeline.name
    outcome = Outcome(endpoint=name)
    bucket = model_bucket(plan, clients, reporter)
    uploads = upload_model_data(plan, clients, bucket, reporter)
    outcome.uploaded, outcome.skipped_uploads = uploads.uploaded, uploads.skipped
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
        with calling("CreateEndpoint" if current is None else "UpdateEndpoint"):
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
        reporter.say(
            f"{name}: {outcome.action} with endpoint config {requests.endpoint_config_name}"
        )

    if wait is None:
        outcome.status = status if outcome.action == "unchanged" else "Creating"
        reporter.say(
            f"{name}: not waiting; `sm-compose status` shows progress, and a later deploy "
            "finishes autoscaling and clean-up"
        )
        return outcome

    final = wait_for_endpoint(clients, name, reporter, wait)
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
    wait: Wait | None = ENDPOINT_WAIT,
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
    with calling("deregistering autoscaling"):
        for variant in sorted(variants):
            _deregister(clients, autoscaling.resource_id(name, variant), outcome)
    if current is not None:
        if delete_if_present(
            f"DeleteEndpoint {name}", lambda: clients.sagemaker.delete_endpoint(EndpointName=name)
        ):
            outcome.deleted.append(f"endpoint {name}")
        if wait is not None:
            wait_for_endpoint(clients, name, reporter, wait, gone=True)
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
