"""The local SageMaker's pieces that need no server: input checks, the rule book, FailureReason."""

from __future__ import annotations

from pathlib import Path

import pytest

from composer.localsm.errors import ApiError
from composer.localsm.lifecycle import MAX_FAILURE_REASON, failure_reason
from composer.localsm.pipelines import plan_model
from composer.localsm.shapes import input_errors, validation_message

FOREIGN = "123456789012.dkr.ecr.us-east-1.amazonaws.com/x:1"


def test_inputs_are_checked_against_botocore_s_shapes() -> None:
    errors = input_errors(
        "CreateEndpointConfig",
        {
            "EndpointConfigName": "c",
            "ProductionVariants": [{"VariantName": "v", "InitialInstanceCount": 0}],
        },
    )
    assert errors == [
        "Value '0' at 'productionVariants.1.member.initialInstanceCount' failed to satisfy "
        "constraint: Member must have value greater than or equal to 1"
    ]
    assert validation_message(errors).startswith("1 validation error detected: Value '0'")
    assert input_errors("ListModels", {"SortBy": "Size"}) == [
        "Value 'Size' at 'sortBy' failed to satisfy constraint: Member must satisfy enum value "
        "set: [Name, CreationTime]"
    ]
    assert input_errors("DescribeModel", {}) == [
        "Value null at 'modelName' failed to satisfy constraint: Member must not be null"
    ]


def test_model_data_may_be_a_local_path_or_file_uri_though_botocore_s_pattern_says_s3() -> None:
    for url in ("file:///models/a.tar.gz", "/models/a.tar.gz", "s3://bucket/a.tar.gz"):
        document = {"ModelName": "m", "PrimaryContainer": {"Image": FOREIGN, "ModelDataUrl": url}}
        assert input_errors("CreateModel", document) == []


def test_create_model_errors_are_the_spec_s_at_create_model_s_members(tmp_path: Path) -> None:
    with pytest.raises(ApiError) as exc:
        plan_model(
            {
                "ModelName": "m",
                "Containers": [
                    {"ContainerHostname": "a", "Image": FOREIGN, "ModelDataUrl": "https://x/y"},
                    {"ContainerHostname": "a", "Image": FOREIGN},
                ],
            },
            tmp_path,
        )
    assert exc.value.message.startswith("Containers[0]: ModelDataUrl: got 'https://x/y'")
    with pytest.raises(ApiError) as exc:
        plan_model(
            {
                "ModelName": "m",
                "Containers": [
                    {"ContainerHostname": "a", "Image": FOREIGN},
                    {"ContainerHostname": "a", "Image": FOREIGN},
                ],
            },
            tmp_path,
        )
    assert exc.value.message == (
        "Containers[1].ContainerHostname: got 'a' again (also containers[0]); hostnames must be "
        "unique"
    )
    with pytest.raises(ApiError, match="got both of PrimaryContainer and Containers"):
        plan_model(
            {"ModelName": "m", "PrimaryContainer": {"Image": FOREIGN}, "Containers": []}, tmp_path
        )


def test_a_serial_model_without_hostnames_gets_sagemaker_s_names(tmp_path: Path) -> None:
    plan = plan_model(
        {"ModelName": "m", "Containers": [{"Image": FOREIGN}, {"Image": FOREIGN}]}, tmp_path
    )
    assert [c["hostname"] for c in plan.containers] == ["container-1", "container-2"]
    assert plan.mode == "Serial" and plan.engine_images == [FOREIGN, FOREIGN]


def test_failure_reason_keeps_the_first_line_and_the_last_log_lines() -> None:
    lines = "\n".join(f"  log line {i}" for i in range(200))
    reason = failure_reason(RuntimeError(f"container a exited while starting:\n{lines}"))
    assert len(reason) <= MAX_FAILURE_REASON
    assert reason.startswith("container a exited while starting:")
    assert reason.endswith("log line 199")
    assert failure_reason(RuntimeError("short")) == "short"
