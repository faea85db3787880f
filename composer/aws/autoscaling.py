"""Application Auto Scaling requests for the endpoint's variant (deploy and export share them)."""

from __future__ import annotations

from typing import Any, Final

from ..spec.models import Pipeline

NAMESPACE: Final = "sagemaker"
DIMENSION: Final = "sagemaker:variant:DesiredInstanceCount"
METRIC: Final = "SageMakerVariantInvocationsPerInstance"
POLICY_TYPE: Final = "TargetTrackingScaling"


def resource_id(endpoint_name: str, variant_name: str) -> str:
    return f"endpoint/{endpoint_name}/variant/{variant_name}"


def policy_name(pipeline: Pipeline) -> str:
    return f"{pipeline.name}-invocations-per-instance"


def target_tracking_configuration(pipeline: Pipeline) -> dict[str, Any]:
    spec = pipeline.endpoint.autoscaling
    assert spec is not None
    return {
        "TargetValue": float(spec.target_invocations_per_instance),
        "PredefinedMetricSpecification": {"PredefinedMetricType": METRIC},
        "ScaleInCooldown": spec.scale_in_cooldown,
        "ScaleOutCooldown": spec.scale_out_cooldown,
    }


def register_scalable_target_request(pipeline: Pipeline) -> dict[str, Any] | None:
    """Keyword arguments of register_scalable_target; None when the spec sets no autoscaling."""
    spec = pipeline.endpoint.autoscaling
    if spec is None:
        return None
    return {
        "ServiceNamespace": NAMESPACE,
        "ResourceId": resource_id(pipeline.name, pipeline.endpoint.variant_name),
        "ScalableDimension": DIMENSION,
        "MinCapacity": spec.min_instances,
        "MaxCapacity": spec.max_instances,
    }


def put_scaling_policy_request(pipeline: Pipeline) -> dict[str, Any] | None:
    """Keyword arguments of put_scaling_policy; None when the spec sets no autoscaling."""
    if pipeline.endpoint.autoscaling is None:
        return None
    return {
        "PolicyName": policy_name(pipeline),
        "ServiceNamespace": NAMESPACE,
        "ResourceId": resource_id(pipeline.name, pipeline.endpoint.variant_name),
        "ScalableDimension": DIMENSION,
        "PolicyType": POLICY_TYPE,
        "TargetTrackingScalingPolicyConfiguration": target_tracking_configuration(pipeline),
    }
