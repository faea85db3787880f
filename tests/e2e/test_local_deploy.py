"""Our own `sm-compose deploy`, `status` and `delete` against `sm-compose local`, and its
asynchronous endpoints, with S3 on moto's server.

S3 and Application Auto Scaling are moto's server (the `moto` fixture); SageMaker is the local
SageMaker, which downloads the model data deploy uploaded from that S3 (through
AWS_ENDPOINT_URL_S3) and runs the container under the engine. A changed redeploy goes through
UpdateEndpoint, which moto lacks: here it really starts the new containers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from composer.runners.engine import Engine
from composer.runners.oci import ENDPOINT_LABEL
from tests.aws_pipelines import ROLE, tiny_model
from tests.e2e.conftest import running_local, write_pipeline
from tests.integration.test_engine import Built
from tests.integration.test_engine import stub_image as stub_image  # the session fixture

pytestmark = [pytest.mark.e2e, pytest.mark.aws, pytest.mark.slow]


def _pipeline(folder: Path, image: str, version: str) -> Path:
    tiny_model(folder / "model.tar.gz", f"weights {version}")
    spec: dict[str, Any] = {
        "name": "deployed",
        "containers": [
            {
                "hostname": "stub",
                "image": image,
                "model_data": "model.tar.gz",
                "environment": {"VERSION": version},
            }
        ],
        "aws": {"region": "us-east-1", "role_arn": ROLE, "s3_bucket": "local-deploy"},
    }
    return write_pipeline(folder, spec)


@pytest.mark.engine
def test_deploy_status_redeploy_and_delete_against_local(
    moto: Any, engine: Engine, stub_image: Built, tmp_path: Path
) -> None:
    import boto3

    boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="local-deploy")
    with running_local("--engine", engine.name, ready=60) as local:
        env = {**os.environ, "AWS_ENDPOINT_URL_SAGEMAKER": local.url}

        def cli(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [sys.executable, "-m", "composer", *args],
                capture_output=True,
                text=True,
                env=env,
                timeout=600,
            )

        pipeline = _pipeline(tmp_path, stub_image.tag, "v1")
        first = cli("deploy", str(pipeline))
        assert first.returncode == 0, first.stderr + first.stdout
        sm = local.sagemaker()
        described = sm.describe_endpoint(EndpointName="deployed")
        assert described["EndpointStatus"] == "InService"
        config = described["EndpointConfigName"]
        assert len(engine.containers_labelled(ENDPOINT_LABEL, "deployed")) == 1

        status = cli("status", str(pipeline))
        assert status.returncode == 0, status.stderr
        assert "InService" in status.stdout + status.stderr

        _pipeline(tmp_path, stub_image.tag, "v2")
        second = cli("deploy", str(pipeline))
        assert second.returncode == 0, second.stderr + second.stdout
        described = sm.describe_endpoint(EndpointName="deployed")
        assert described["EndpointStatus"] == "InService"
        assert described["EndpointConfigName"] != config  # UpdateEndpoint to the new config
        model = sm.describe_endpoint_config(EndpointConfigName=described["EndpointConfigName"])[
            "ProductionVariants"
        ][0]["ModelName"]
        environment = sm.describe_model(ModelName=model)["PrimaryContainer"]["Environment"]
        assert environment == {"VERSION": "v2"}
        deadline = time.monotonic() + 60  # the old set stops once traffic has switched
        while len(engine.containers_labelled(ENDPOINT_LABEL, "deployed")) != 1:
            assert time.monotonic() < deadline
            time.sleep(0.5)

        gone = cli("delete", str(pipeline))
        assert gone.returncode == 0, gone.stderr + gone.stdout
        assert sm.list_endpoints()["Endpoints"] == []
        assert json.dumps(sm.list_models()["Models"]) == "[]"
    assert engine.containers_labelled(ENDPOINT_LABEL, "deployed") == []


def test_an_async_endpoint_reads_and_writes_s3(moto: Any, images: dict[str, str]) -> None:
    import boto3

    s3 = boto3.client("s3", region_name="us-east-1")
    for bucket in ("local-async-in", "local-async-out"):
        s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket="local-async-in", Key="request.json", Body=b'{"async": true}')
    with running_local(ready=60) as local:
        sm = local.sagemaker()
        sm.create_model(ModelName="async", PrimaryContainer={"Image": images["echo"]})
        sm.create_endpoint_config(
            EndpointConfigName="async",
            ProductionVariants=[{"VariantName": "v", "ModelName": "async"}],
            AsyncInferenceConfig={
                "OutputConfig": {"S3OutputPath": "s3://local-async-out/results"},
                "ClientConfig": {"MaxConcurrentInvocationsPerInstance": 2},
            },
        )
        sm.create_endpoint(EndpointName="async", EndpointConfigName="async")
        described = sm.describe_endpoint(EndpointName="async")
        assert described["EndpointStatus"] == "InService", described
        assert described["AsyncInferenceConfig"]["OutputConfig"]["S3OutputPath"] == (
            "s3://local-async-out/results"
        )
        answer = local.client().invoke_endpoint_async(
            EndpointName="async",
            InputLocation="s3://local-async-in/request.json",
            ContentType="application/json",
            InferenceId="one",
        )
        assert answer["OutputLocation"] == "s3://local-async-out/results/one.out"
        deadline = time.monotonic() + 60
        while True:
            try:
                found = s3.get_object(Bucket="local-async-out", Key="results/one.out")
                break
            except s3.exceptions.NoSuchKey:
                assert time.monotonic() < deadline
                time.sleep(0.2)
        assert json.loads(found["Body"].read()) == {"async": True}
