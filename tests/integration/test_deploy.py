"""Deploy, redeploy, delete and status against moto: in process, and its real server.

Clients are unmodified boto3 clients; what they send is recorded with botocore's before-call
hook, because moto drops InferenceExecutionConfig from DescribeModel. moto has no UpdateEndpoint:
a changed redeploy, and deleting what it left, run against the local SageMaker instead
(tests/e2e/test_local_deploy.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from composer.aws.deploy import deploy, status
from composer.aws.report import Quiet
from tests.aws_pipelines import SPACY, TEXTBLOB, plan_for, write_pipeline
from tests.integration.aws_fixtures import ROOT, MotoServer, Recorder, recorded_clients

CREATES = {"CreateModel", "CreateEndpointConfig", "CreateEndpoint", "UpdateEndpoint", "PutObject"}


# --- in process (mock_aws, the `aws` fixture) -------------------------------------------------


@pytest.mark.parametrize("mode", ["Direct", "Serial"])
def test_deploy_sends_containers_and_execution_mode(aws: None, tmp_path: Path, mode: str) -> None:
    recorder = Recorder()
    clients = recorded_clients(recorder)
    outcome = deploy(plan_for(write_pipeline(tmp_path, mode=mode)), clients, Quiet())
    assert (outcome.action, outcome.status) == ("created", "InService")

    (model,) = recorder.sent("CreateModel")
    assert model["InferenceExecutionConfig"] == {"Mode": mode}
    assert [(c["ContainerHostname"], c["Image"]) for c in model["Containers"]] == [
        ("spacy", SPACY),
        ("textblob", TEXTBLOB),
    ]
    assert model["Containers"][0]["ModelDataUrl"].startswith(
        "s3://sagemaker-us-east-1-123456789012/sagemaker-composer/"
    )
    assert model["Tags"] == [{"Key": "project", "Value": "composer-tests"}]
    described = clients.sagemaker.describe_model(ModelName=model["ModelName"])
    assert [c["ContainerHostname"] for c in described["Containers"]] == ["spacy", "textblob"]
    endpoint = clients.sagemaker.describe_endpoint(EndpointName=f"nlp-{mode.lower()}")
    assert endpoint["EndpointStatus"] == "InService"
    # The default bucket was created and holds the model data with its digest.
    url = model["Containers"][0]["ModelDataUrl"]
    bucket, key = url[len("s3://") :].split("/", 1)
    head = clients.s3.head_object(Bucket=bucket, Key=key)
    assert len(head["Metadata"]["sha256"]) == 64


def test_unchanged_redeploy_creates_nothing(aws: None, tmp_path: Path) -> None:
    recorder = Recorder()
    clients = recorded_clients(recorder)
    plan = plan_for(write_pipeline(tmp_path))
    deploy(plan, clients, Quiet())
    recorder.clear()
    outcome = deploy(plan, clients, Quiet())
    assert outcome.action == "unchanged"
    assert outcome.uploaded == [] and len(outcome.skipped_uploads) == 1
    assert not CREATES & set(recorder.ops())
    assert not [op for op in recorder.ops() if op.startswith("Delete")]


def test_autoscaling_registered_once(aws: None, tmp_path: Path) -> None:
    recorder = Recorder()
    clients = recorded_clients(recorder)
    plan = plan_for(write_pipeline(tmp_path, autoscaling=True))
    deploy(plan, clients, Quiet())
    (target,) = recorder.sent("RegisterScalableTarget")
    assert target == {
        "ServiceNamespace": "sagemaker",
        "ResourceId": "endpoint/nlp-direct/variant/AllTraffic",
        "ScalableDimension": "sagemaker:variant:DesiredInstanceCount",
        "MinCapacity": 1,
        "MaxCapacity": 4,
    }
    (policy,) = recorder.sent("PutScalingPolicy")
    assert policy["PolicyType"] == "TargetTrackingScaling"
    tracking = policy["TargetTrackingScalingPolicyConfiguration"]
    assert tracking["TargetValue"] == 100.0
    assert tracking["PredefinedMetricSpecification"]["PredefinedMetricType"] == (
        "SageMakerVariantInvocationsPerInstance"
    )
    recorder.clear()
    deploy(plan, clients, Quiet())
    assert "RegisterScalableTarget" not in recorder.ops()
    assert "PutScalingPolicy" not in recorder.ops()
    assert status(plan.pipeline, clients)["variants"][0]["autoscaling"] == {"min": 1, "max": 4}  # type: ignore[index]


def test_folder_model_data_is_packed_and_uploaded_once(aws: None, tmp_path: Path) -> None:
    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / "model.txt").write_text("w")
    recorder = Recorder()
    clients = recorded_clients(recorder)
    path = write_pipeline(tmp_path, model_data="weights", bucket="my-models")
    clients.s3.create_bucket(Bucket="my-models")
    first = deploy(plan_for(path), clients, Quiet())
    second = deploy(plan_for(path), clients, Quiet())  # packs again, same bytes
    assert len(first.uploaded) == 1
    assert second.skipped_uploads == first.uploaded
    assert "GetCallerIdentity" not in recorder.ops()


# --- moto's standalone server, unmodified clients through AWS_ENDPOINT_URL_* ---------------------


@pytest.fixture
def server(moto: MotoServer) -> MotoServer:
    """The shared server, emptied for each test: each deploys the same endpoint."""
    moto.reset()
    return moto


@pytest.mark.aws
@pytest.mark.slow
def test_server_cli_in_a_subprocess(server: MotoServer, tmp_path: Path) -> None:
    """The installed entry point, a separate process, only environment variables to find AWS."""
    path = write_pipeline(tmp_path, mode="Serial")
    env = {**os.environ, **server.env(), "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "composer"]
    deployed = subprocess.run(
        [*command, "deploy", str(path)], env=env, capture_output=True, text=True, timeout=60
    )
    assert deployed.returncode == 0, deployed.stderr
    assert "nlp-serial: created, InService" in deployed.stdout
    again = subprocess.run(
        [*command, "deploy", str(path), "--no-wait"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert again.returncode == 0, again.stderr
    assert "unchanged" in again.stdout
    shown = subprocess.run(
        [*command, "status", str(path)], env=env, capture_output=True, text=True, timeout=60
    )
    assert shown.returncode == 0, shown.stderr
    assert "nlp-serial: InService" in shown.stdout
    assert "variant AllTraffic: ml.m5.large x 1" in shown.stdout
