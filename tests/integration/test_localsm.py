"""The local SageMaker's control plane behind a real gateway, called by an unmodified boto3.

No container starts here (images no build of ours made, and no engine, fail at once), so these
run in plain `pytest`: the protocol, the errors, validation by botocore's shapes and the spec's
rule book, List paging, statuses, and every answer against botocore's output shapes. What needs
containers running is in tests/e2e/test_local_sagemaker.py.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from composer.gateway import ThreadedGateway
from composer.localsm import Lifecycle, LocalSageMaker
from tests.conftest import sagemaker_client_for
from tests.sagemaker_shapes import ShapeRecorder

FOREIGN = "123456789012.dkr.ecr.us-east-1.amazonaws.com/someone-elses:1"


@pytest.fixture
def local(tmp_path: Path) -> Iterator[tuple[ThreadedGateway, Any, ShapeRecorder]]:
    lifecycle = Lifecycle(tmp_path, out=lambda _line: None)
    control = LocalSageMaker(lifecycle, create_wait=5.0)
    gateway = ThreadedGateway(None, control=control).start()
    lifecycle.registry = gateway.gateway.endpoints
    client = sagemaker_client_for(gateway.url)
    recorder = ShapeRecorder(client)
    try:
        yield gateway, client, recorder
    finally:
        gateway.stop(grace=1)


def _code(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


def _raw(
    url: str,
    target: str | None,
    body: bytes,
    content_type: str | None = "application/x-amz-json-1.1",
) -> tuple[int, dict[str, str], Any]:
    headers = {} if content_type is None else {"Content-Type": content_type}
    if target is not None:
        headers["X-Amz-Target"] = target
    request = urllib.request.Request(url + "/", data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), json.loads(err.read())


def test_an_operation_not_emulated_names_those_that_are(local: Any) -> None:
    gateway, client, _ = local
    with pytest.raises(ClientError) as exc:
        client.list_training_jobs()
    assert _code(exc) == "UnknownOperationException"
    assert "CreateEndpoint" in str(exc.value) and "DescribeEndpoint" in str(exc.value)
    status, headers, body = _raw(gateway.url, None, b"{}")
    assert status == 400 and body["__type"] == "UnknownOperationException"
    assert headers["x-amzn-ErrorType"] == "UnknownOperationException"


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2]", b"\xff\xfe"])
def test_a_malformed_body_is_a_serialization_exception(local: Any, body: bytes) -> None:
    gateway, _, _ = local
    status, headers, answer = _raw(gateway.url, "SageMaker.ListModels", body)
    assert status == 400
    assert answer["__type"] == headers["x-amzn-ErrorType"] == "SerializationException"
    assert answer["message"]


@pytest.mark.parametrize("content_type", [None, "application/json", "text/plain", ""])
def test_a_content_type_other_than_aws_json_is_refused(
    local: Any, content_type: str | None
) -> None:
    gateway, _, _ = local
    status, headers, answer = _raw(gateway.url, "SageMaker.ListModels", b"{}", content_type)
    assert status == 415
    assert answer["__type"] == headers["x-amzn-ErrorType"] == "UnsupportedMediaTypeException"
    assert "application/x-amz-json-1.1" in answer["message"]


def test_content_type_parameters_are_ignored(local: Any) -> None:
    gateway, _, _ = local
    kind = "Application/X-Amz-Json-1.1; charset=utf-8"
    status, _, answer = _raw(gateway.url, "SageMaker.ListModels", b"{}", kind)
    assert status == 200 and "Models" in answer


def test_a_body_over_the_payload_limit_is_a_validation_exception(local: Any) -> None:
    gateway, _, _ = local
    status, headers, answer = _raw(gateway.url, "SageMaker.ListModels", b" " * (6291456 + 1))
    assert status == 400
    assert answer["__type"] == headers["x-amzn-ErrorType"] == "ValidationException"
    assert "6291456" in answer["message"]


def test_a_wrong_member_is_refused_as_sagemaker_refuses_it(local: Any) -> None:
    gateway, client, _ = local
    status, _, answer = _raw(
        gateway.url, "SageMaker.DescribeModel", json.dumps({"ModelName": "bad name!"}).encode()
    )
    assert status == 400 and answer["__type"] == "ValidationException"
    assert "at 'modelName' failed to satisfy constraint" in answer["message"]
    with pytest.raises(ClientError) as exc:
        client.create_model(ModelName="m", PrimaryContainer={"Image": FOREIGN, "Mode": "Bogus"})
    assert _code(exc) == "ValidationException"
    assert "enum value set: [SingleModel, MultiModel]" in str(exc.value)


def test_create_model_uses_the_spec_rule_book(local: Any, tmp_path: Path) -> None:
    _, client, _ = local
    big = {f"K{i}": "v" * 1000 for i in range(40)}  # 40 KB: over SageMaker's 32 KB per model
    with pytest.raises(ClientError) as exc:
        client.create_model(
            ModelName="big",
            Containers=[
                {"ContainerHostname": "a", "Image": FOREIGN, "Environment": big},
                {"ContainerHostname": "b", "Image": FOREIGN},
            ],
        )
    assert "Containers: got" in str(exc.value) and "at most 32768 per model" in str(exc.value)
    with pytest.raises(ClientError) as exc:
        client.create_model(
            ModelName="direct",
            Containers=[{"ContainerHostname": "a", "Image": FOREIGN}, {"Image": FOREIGN}],
            InferenceExecutionConfig={"Mode": "Direct"},
        )
    assert "Direct invocation needs a ContainerHostname" in str(exc.value)
    missing = tmp_path / "nowhere" / "model.tar.gz"
    with pytest.raises(ClientError) as exc:
        client.create_model(
            ModelName="data",
            PrimaryContainer={"Image": FOREIGN, "ModelDataUrl": missing.as_uri()},
        )
    assert f"PrimaryContainer.ModelDataUrl: got '{missing}', which does not exist" in str(exc.value)


def test_models_and_configs_are_created_described_listed_deleted(local: Any) -> None:
    _, client, recorder = local
    arn = client.create_model(
        ModelName="Two-Containers",
        ExecutionRoleArn="arn:aws:iam::123456789012:role/Role",
        Containers=[
            {"ContainerHostname": "a", "Image": FOREIGN, "Environment": {"X": "1"}},
            {"ContainerHostname": "b", "Image": FOREIGN},
        ],
        InferenceExecutionConfig={"Mode": "Direct"},
    )["ModelArn"]
    assert arn == "arn:aws:sagemaker:us-east-1:000000000000:model/two-containers"
    with pytest.raises(ClientError) as exc:
        client.create_model(ModelName="Two-Containers", PrimaryContainer={"Image": FOREIGN})
    assert str(exc.value).endswith(f'Cannot create already existing model "{arn}".')
    described = client.describe_model(ModelName="Two-Containers")
    assert described["InferenceExecutionConfig"] == {"Mode": "Direct"}
    assert described["Containers"][0]["Environment"] == {"X": "1"}
    for name in ("m-b", "m-a", "m-c"):
        client.create_model(ModelName=name, PrimaryContainer={"Image": FOREIGN})
    first = client.list_models(SortBy="Name", SortOrder="Ascending", MaxResults=2)
    assert [m["ModelName"] for m in first["Models"]] == ["Two-Containers", "m-a"]
    rest = client.list_models(SortBy="Name", SortOrder="Ascending", NextToken=first["NextToken"])
    assert [m["ModelName"] for m in rest["Models"]] == ["m-b", "m-c"] and "NextToken" not in rest
    assert [m["ModelName"] for m in client.list_models(NameContains="two")["Models"]] == [
        "Two-Containers"
    ]
    with pytest.raises(ClientError) as exc:
        client.create_endpoint_config(
            EndpointConfigName="c", ProductionVariants=[{"VariantName": "v", "ModelName": "nope"}]
        )
    assert _code(exc) == "ValidationException" and "Could not find model" in str(exc.value)
    client.create_endpoint_config(
        EndpointConfigName="c",
        ProductionVariants=[
            {
                "VariantName": "prod",
                "ModelName": "m-a",
                "InstanceType": "ml.r5.24xlarge",
                "InitialInstanceCount": 1,
            }
        ],
    )
    assert (
        client.describe_endpoint_config(EndpointConfigName="c")["ProductionVariants"][0][
            "VariantName"
        ]
        == "prod"
    )
    assert [c["EndpointConfigName"] for c in client.list_endpoint_configs()["EndpointConfigs"]] == [
        "c"
    ]
    client.delete_endpoint_config(EndpointConfigName="c")
    client.delete_model(ModelName="m-a")
    with pytest.raises(ClientError) as exc:
        client.describe_model(ModelName="m-a")
    assert str(exc.value).endswith('Could not find model "m-a".')
    with pytest.raises(ClientError) as exc:
        client.describe_endpoint_config(EndpointConfigName="c")
    assert str(exc.value).endswith('Could not find endpoint configuration "c".')
    assert recorder.problems == []


def test_an_image_no_build_made_fails_without_an_engine(local: Any) -> None:
    _, client, recorder = local
    client.create_model(ModelName="foreign", PrimaryContainer={"Image": FOREIGN})
    client.create_endpoint_config(
        EndpointConfigName="fc", ProductionVariants=[{"VariantName": "v", "ModelName": "foreign"}]
    )
    started = time.monotonic()
    client.create_endpoint(EndpointName="foreign", EndpointConfigName="fc")
    assert time.monotonic() - started < 5  # answered once Failed, not after the 5 s bound
    described = client.describe_endpoint(EndpointName="foreign")
    assert described["EndpointStatus"] == "Failed"
    assert FOREIGN in described["FailureReason"] and "--engine" in described["FailureReason"]
    listed = client.list_endpoints(StatusEquals="Failed")["Endpoints"]
    assert [e["EndpointName"] for e in listed] == ["foreign"]
    assert client.list_endpoints(StatusEquals="InService")["Endpoints"] == []
    with pytest.raises(ClientError) as exc:
        client.update_endpoint(EndpointName="foreign", EndpointConfigName="fc")
    assert _code(exc) == "ValidationException"
    with pytest.raises(ClientError) as exc:
        client.create_endpoint(EndpointName="foreign", EndpointConfigName="fc")
    assert "Cannot create already existing endpoint" in str(exc.value)
    client.delete_endpoint(EndpointName="foreign")
    client.get_waiter("endpoint_deleted").wait(
        EndpointName="foreign", WaiterConfig={"Delay": 1, "MaxAttempts": 5}
    )
    with pytest.raises(ClientError) as exc:
        client.describe_endpoint(EndpointName="foreign")
    assert str(exc.value).endswith('Could not find endpoint "foreign".')
    assert recorder.problems == []


def test_tags_are_kept_per_resource(local: Any) -> None:
    _, client, recorder = local
    arn = client.create_model(
        ModelName="tagged",
        PrimaryContainer={"Image": FOREIGN},
        Tags=[{"Key": "project", "Value": "composer"}],
    )["ModelArn"]
    client.add_tags(ResourceArn=arn, Tags=[{"Key": "stage", "Value": "dev"}])
    client.add_tags(ResourceArn=arn, Tags=[{"Key": "stage", "Value": "prod"}])
    assert client.list_tags(ResourceArn=arn)["Tags"] == [
        {"Key": "project", "Value": "composer"},
        {"Key": "stage", "Value": "prod"},
    ]
    client.delete_tags(ResourceArn=arn, TagKeys=["project", "absent"])
    assert client.list_tags(ResourceArn=arn)["Tags"] == [{"Key": "stage", "Value": "prod"}]
    missing = arn.replace("tagged", "nothing")
    with pytest.raises(ClientError) as exc:
        client.list_tags(ResourceArn=missing)
    assert _code(exc) == "ValidationException" and missing in str(exc.value)
    client.delete_model(ModelName="tagged")
    client.create_model(ModelName="tagged", PrimaryContainer={"Image": FOREIGN})
    assert client.list_tags(ResourceArn=arn)["Tags"] == []  # a new model of the same name
    assert recorder.problems == []


def test_every_emulated_operation_answers_in_botocore_s_output_shape(local: Any) -> None:
    """The walk over botocore's model: each emulated operation called, each answer checked."""
    _, client, recorder = local
    client.create_model(ModelName="m", PrimaryContainer={"Image": FOREIGN})
    client.describe_model(ModelName="m")
    client.list_models()
    client.create_endpoint_config(
        EndpointConfigName="c", ProductionVariants=[{"VariantName": "v", "ModelName": "m"}]
    )
    client.describe_endpoint_config(EndpointConfigName="c")
    client.list_endpoint_configs()
    arn = client.create_endpoint(
        EndpointName="e", EndpointConfigName="c", Tags=[{"Key": "team", "Value": "nlp"}]
    )["EndpointArn"]
    client.describe_endpoint(EndpointName="e")
    client.list_endpoints()
    client.add_tags(ResourceArn=arn, Tags=[{"Key": "stage", "Value": "dev"}])
    client.list_tags(ResourceArn=arn)
    client.delete_tags(ResourceArn=arn, TagKeys=["team"])
    client.delete_endpoint(EndpointName="e")
    client.create_transform_job(
        TransformJobName="t",
        ModelName="m",
        TransformInput={"DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "/in"}}},
        TransformOutput={"S3OutputPath": "/out"},
        TransformResources={"InstanceType": "ml.m5.large", "InstanceCount": 1},
    )
    deadline = time.monotonic() + 10
    while client.describe_transform_job(TransformJobName="t")["TransformJobStatus"] == "InProgress":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    failed = client.describe_transform_job(TransformJobName="t")
    assert failed["TransformJobStatus"] == "Failed" and FOREIGN in failed["FailureReason"]
    client.list_transform_jobs()
    client.stop_transform_job(TransformJobName="t")
    client.delete_endpoint_config(EndpointConfigName="c")
    client.delete_model(ModelName="m")
    # The updates succeed only with containers running: tests/e2e/test_local_sagemaker.py.
    updates = {"UpdateEndpoint", "UpdateEndpointWeightsAndCapacities"}
    expected = set(LocalSageMaker(Lifecycle(Path("."))).operations) - updates
    assert recorder.seen == expected
    assert recorder.problems == []
