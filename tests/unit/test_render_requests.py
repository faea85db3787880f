"""SageMaker request documents: golden files, content-hashed names, single vs multi container."""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

import botocore.session
import pytest
from botocore.validate import ParamValidator

from composer.errors import UsageError
from composer.render.sagemaker import (
    PLACEHOLDER_ROLE,
    dumps,
    is_placeholder_image,
    placeholder_artifacts,
    render_requests,
)
from composer.spec import load_pipeline, parse_pipeline

REPO = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).parent / "golden"
EXAMPLES = ["nlp-direct", "nlp-serial"]
MULTI_MODEL_EXAMPLES = ["nlp-multi-model", "nlp-multi-serial"]


def _service_model():  # type: ignore[no-untyped-def]
    return botocore.session.get_session().get_service_model("sagemaker")


def _check_against_botocore(operation: str, params: dict[str, object]) -> None:
    """botocore's own validation of the request, as boto3 would run it before sending."""
    shape = _service_model().operation_model(operation).input_shape
    report = ParamValidator().validate(params, shape)
    assert not report.has_errors(), report.generate_report()


@pytest.mark.parametrize("example", EXAMPLES + MULTI_MODEL_EXAMPLES)
def test_requests_match_golden_files(example: str) -> None:
    pipeline = load_pipeline(REPO / "pipelines" / f"{example}.yaml")
    requests = render_requests(pipeline, placeholder_artifacts(pipeline))
    for name, doc in [
        ("create_model", requests.model),
        ("create_endpoint_config", requests.endpoint_config),
        ("create_endpoint", requests.endpoint),
    ]:
        golden = GOLDEN / example / f"{name}.json"
        if os.environ.get("UPDATE_GOLDEN"):
            golden.parent.mkdir(parents=True, exist_ok=True)
            golden.write_text(dumps(doc))
        assert dumps(doc) == golden.read_text(), f"{golden} differs (UPDATE_GOLDEN=1 rewrites)"
    _check_against_botocore("CreateModel", requests.model)
    _check_against_botocore("CreateEndpointConfig", requests.endpoint_config)
    _check_against_botocore("CreateEndpoint", requests.endpoint)


@pytest.mark.parametrize("example", EXAMPLES)
def test_multi_container_model_shape(example: str) -> None:
    pipeline = load_pipeline(REPO / "pipelines" / f"{example}.yaml")
    model = render_requests(pipeline, placeholder_artifacts(pipeline)).model
    assert "PrimaryContainer" not in model
    assert [c["ContainerHostname"] for c in model["Containers"]] == ["spacy", "textblob"]
    assert model["InferenceExecutionConfig"] == {"Mode": pipeline.mode}
    assert model["Containers"][0]["ModelDataUrl"].endswith("/spacy/model.tar.gz")
    assert "ModelDataUrl" not in model["Containers"][1]
    assert all(is_placeholder_image(c["Image"]) for c in model["Containers"])
    assert model["ExecutionRoleArn"] == PLACEHOLDER_ROLE


def _single(tmp_path: Path, extra: str = "") -> str:
    base = textwrap.dedent(
        """
        name: solo
        containers:
          - hostname: only
            image: 123456789012.dkr.ecr.eu-west-1.amazonaws.com/solo:3
            model_data: s3://my-bucket/models/solo.tar.gz
            environment:
              A: "1"
        aws:
          region: eu-west-1
          role_arn: arn:aws:iam::123456789012:role/SageMakerRole
        """
    )
    return base + extra


def test_single_container_becomes_primary_container(tmp_path: Path) -> None:
    pipeline = parse_pipeline(_single(tmp_path), "solo.yaml")
    requests = render_requests(pipeline, placeholder_artifacts(pipeline))
    model = requests.model
    assert "Containers" not in model and "InferenceExecutionConfig" not in model
    assert model["PrimaryContainer"] == {
        "ContainerHostname": "only",
        "Image": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/solo:3",
        "Environment": {"A": "1"},
        "ModelDataUrl": "s3://my-bucket/models/solo.tar.gz",
    }
    assert model["ExecutionRoleArn"] == "arn:aws:iam::123456789012:role/SageMakerRole"
    _check_against_botocore("CreateModel", model)


def test_names_are_content_hashes(tmp_path: Path) -> None:
    a = parse_pipeline(_single(tmp_path), "solo.yaml")
    b = parse_pipeline(_single(tmp_path).replace('A: "1"', 'A: "2"'), "solo.yaml")
    ra = render_requests(a, placeholder_artifacts(a))
    ra2 = render_requests(a, placeholder_artifacts(a))
    rb = render_requests(b, placeholder_artifacts(b))
    assert ra.model_name == ra2.model_name
    assert ra.model_name.startswith("solo-") and len(ra.model_name) == len("solo-") + 8
    assert ra.model_name != rb.model_name
    assert ra.endpoint_config_name != rb.endpoint_config_name
    assert ra.endpoint["EndpointName"] == rb.endpoint["EndpointName"] == "solo"
    assert ra.endpoint_config["ProductionVariants"][0]["ModelName"] == ra.model_name


def test_name_too_long_once_hashed(tmp_path: Path) -> None:
    long_name = "n" * 60
    pipeline = parse_pipeline(_single(tmp_path).replace("name: solo", f"name: {long_name}"), "x")
    with pytest.raises(UsageError, match="may have at most 54 characters"):
        render_requests(pipeline, placeholder_artifacts(pipeline))


def test_endpoint_config_options(tmp_path: Path) -> None:
    extra = """
        endpoint:
          instance_type: ml.c5.xlarge
          instance_count: 2
          variant_name: Blue
          startup_health_check_timeout: 600
          kms_key_id: alias/my-key
          data_capture:
            destination: s3://my-bucket/capture
            sampling_percentage: 20
    """
    pipeline = parse_pipeline(_single(tmp_path, textwrap.dedent(extra)), "x")
    config = render_requests(pipeline, placeholder_artifacts(pipeline)).endpoint_config
    (variant,) = config["ProductionVariants"]
    assert variant["VariantName"] == "Blue"
    assert variant["InstanceType"] == "ml.c5.xlarge"
    assert variant["InitialInstanceCount"] == 2
    assert variant["ContainerStartupHealthCheckTimeoutInSeconds"] == 600
    assert config["KmsKeyId"] == "alias/my-key"
    assert config["DataCaptureConfig"]["InitialSamplingPercentage"] == 20
    _check_against_botocore("CreateEndpointConfig", config)


def test_dumps_is_stable() -> None:
    doc = {"b": 1, "a": {"z": [1, 2], "y": "é"}}
    assert dumps(doc) == dumps(json.loads(dumps(doc)))


def test_async_inference_config(tmp_path: Path) -> None:
    extra = """
async:
  output_path: s3://my-bucket/async/out
  failure_path: s3://my-bucket/async/failed
  success_topic: arn:aws:sns:eu-west-1:123456789012:ok
  error_topic: arn:aws:sns:eu-west-1:123456789012:ko
  kms_key_id: alias/k
  max_concurrent_invocations_per_instance: 4
"""
    pipeline = parse_pipeline(_single(tmp_path, extra), "x")
    config = render_requests(pipeline, placeholder_artifacts(pipeline)).endpoint_config
    assert config["AsyncInferenceConfig"] == {
        "OutputConfig": {
            "S3OutputPath": "s3://my-bucket/async/out",
            "S3FailurePath": "s3://my-bucket/async/failed",
            "NotificationConfig": {
                "SuccessTopic": "arn:aws:sns:eu-west-1:123456789012:ok",
                "ErrorTopic": "arn:aws:sns:eu-west-1:123456789012:ko",
            },
            "KmsKeyId": "alias/k",
        },
        "ClientConfig": {"MaxConcurrentInvocationsPerInstance": 4},
    }
    _check_against_botocore("CreateEndpointConfig", config)


def test_multi_model_container_definition(tmp_path: Path) -> None:
    """Mode MultiModel, the prefix (ending in /) as ModelDataUrl, SAGEMAKER_MULTI_MODEL first."""
    (tmp_path / "models").mkdir()
    text = textwrap.dedent(
        f"""
        name: mm
        containers:
          - hostname: pre
            image: 123456789012.dkr.ecr.eu-west-1.amazonaws.com/pre:1
          - hostname: models
            image: 123456789012.dkr.ecr.eu-west-1.amazonaws.com/mm:1
            multi_model: true
            model_data: {tmp_path / "models"}
            environment:
              A: 1
          - hostname: s3models
            image: 123456789012.dkr.ecr.eu-west-1.amazonaws.com/mm:1
            model_data: s3://my-bucket/models/solo.tar.gz
        aws:
          region: eu-west-1
          s3_bucket: my-bucket
        """
    )
    pipeline = parse_pipeline(text, "mm.yaml")
    model = render_requests(pipeline, placeholder_artifacts(pipeline)).model
    pre, models, plain = model["Containers"]
    assert "Mode" not in pre and "Mode" not in plain
    assert models["Mode"] == "MultiModel"
    assert models["ModelDataUrl"] == "s3://my-bucket/sagemaker-composer/mm/models/models/"
    assert list(models["Environment"].items()) == [("SAGEMAKER_MULTI_MODEL", "true"), ("A", "1")]
    assert plain["ModelDataUrl"] == "s3://my-bucket/models/solo.tar.gz"
    _check_against_botocore("CreateModel", model)


@pytest.mark.parametrize("prefix", ["s3://team/spacy", "s3://team/spacy/"])
def test_multi_model_s3_prefix_ends_in_a_slash(tmp_path: Path, prefix: str) -> None:
    text = (
        "name: mm\ncontainers:\n  - hostname: models\n"
        "    image: 123456789012.dkr.ecr.eu-west-1.amazonaws.com/mm:1\n"
        f"    multi_model: true\n    model_data: {prefix}\n"
    )
    pipeline = parse_pipeline(text, "mm.yaml")
    primary = render_requests(pipeline, placeholder_artifacts(pipeline)).model["PrimaryContainer"]
    assert primary["ModelDataUrl"] == "s3://team/spacy/"
    assert primary["Mode"] == "MultiModel"
