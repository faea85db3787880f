"""`sm-compose export --format cloudformation`: the deploy requests as one CloudFormation stack.

The resources carry the very documents `render_requests` builds (CloudFormation's SageMaker
properties mirror the API's), with three substitutions: the execution role becomes a parameter,
names of the model and config are read with Fn::GetAtt so CloudFormation orders the resources,
and the default bucket is spelled with ${AWS::Region} and ${AWS::AccountId}.
"""

from __future__ import annotations

import json
from typing import Any

from ..render.sagemaker import PLACEHOLDER_ACCOUNT, default_bucket
from . import autoscaling
from .plan import Plan


def template(plan: Plan) -> dict[str, Any]:
    """The stack for `plan`; local model data is referenced where deploy would upload it."""
    pipeline = plan.pipeline
    explicit_bucket = pipeline.aws.s3_bucket
    bucket = explicit_bucket or default_bucket(plan.region, PLACEHOLDER_ACCOUNT)
    requests = plan.requests(bucket)

    model = dict(requests.model)
    model["ExecutionRoleArn"] = {"Ref": "ExecutionRoleArn"}
    definitions = model.get("Containers") or [model["PrimaryContainer"]]
    for definition in definitions:
        url = definition.get("ModelDataUrl")
        if url and not explicit_bucket and url.startswith(f"s3://{bucket}/"):
            key = url[len(f"s3://{bucket}/") :]
            definition["ModelDataUrl"] = {
                "Fn::Sub": f"s3://sagemaker-${{AWS::Region}}-${{AWS::AccountId}}/{key}"
            }
    config = dict(requests.endpoint_config)
    config["ProductionVariants"] = [
        {**v, "ModelName": {"Fn::GetAtt": ["Model", "ModelName"]}}
        for v in config["ProductionVariants"]
    ]
    endpoint = dict(requests.endpoint)
    endpoint["EndpointConfigName"] = {"Fn::GetAtt": ["EndpointConfig", "EndpointConfigName"]}

    resources: dict[str, Any] = {
        "Model": {"Type": "AWS::SageMaker::Model", "Properties": model},
        "EndpointConfig": {"Type": "AWS::SageMaker::EndpointConfig", "Properties": config},
        "Endpoint": {"Type": "AWS::SageMaker::Endpoint", "Properties": endpoint},
    }
    target = autoscaling.register_scalable_target_request(pipeline)
    policy = autoscaling.put_scaling_policy_request(pipeline)
    if target is not None and policy is not None:
        resource_id = {
            "Fn::Sub": (
                f"endpoint/${{Endpoint.EndpointName}}/variant/{pipeline.endpoint.variant_name}"
            )
        }
        resources["ScalableTarget"] = {
            "Type": "AWS::ApplicationAutoScaling::ScalableTarget",
            "Properties": {
                "ServiceNamespace": target["ServiceNamespace"],
                "ResourceId": resource_id,
                "ScalableDimension": target["ScalableDimension"],
                "MinCapacity": target["MinCapacity"],
                "MaxCapacity": target["MaxCapacity"],
            },
        }
        resources["ScalingPolicy"] = {
            "Type": "AWS::ApplicationAutoScaling::ScalingPolicy",
            "Properties": {
                "PolicyName": policy["PolicyName"],
                "PolicyType": policy["PolicyType"],
                "ScalingTargetId": {"Ref": "ScalableTarget"},
                "TargetTrackingScalingPolicyConfiguration": policy[
                    "TargetTrackingScalingPolicyConfiguration"
                ],
            },
        }
    shown_bucket = bucket if explicit_bucket else "sagemaker-REGION-ACCOUNT"
    uploads = [
        f"{u.archive} -> s3://{shown_bucket}/{u.key}"
        for u in plan.uploads
        if u.target_model is None
    ]
    for c in pipeline.containers:  # a multi-model folder: its archives, under one prefix
        if c.hostname in plan.prefixes:
            folder = pipeline.resolve(c.model_data or "")
            uploads.append(
                f"the .tar.gz archives under {folder} (same relative paths) -> "
                f"s3://{shown_bucket}/{plan.prefixes[c.hostname]}"
            )
    description = (
        f"SageMaker endpoint {pipeline.name} ({len(pipeline.containers)} container(s), "
        f"{pipeline.mode}) exported by sagemaker-composer."
    )
    if uploads:
        description += " Upload model data first: " + "; ".join(uploads)
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": description[:1024],
        "Parameters": {
            "ExecutionRoleArn": {
                "Type": "String",
                "Default": plan.role_arn,
                "Description": "IAM role SageMaker assumes (ExecutionRoleArn of the model).",
            }
        },
        "Resources": resources,
        "Outputs": {
            "EndpointName": {"Value": {"Fn::GetAtt": ["Endpoint", "EndpointName"]}},
            "ModelName": {"Value": {"Fn::GetAtt": ["Model", "ModelName"]}},
        },
    }


def dumps(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2) + "\n"
