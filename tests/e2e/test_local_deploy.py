"""Our own `sm-compose deploy`, `status` and `delete` against `sm-compose local`, and its
asynchronous endpoints, with S3 on moto's server.

S3 and Application Auto Scaling are moto's server (the `moto` fixture); SageMaker is the local
SageMaker, which downloads the model data deploy uploaded from that S3 (through
AWS_ENDPOINT_URL_S3) and runs the containers. A changed redeploy goes through UpdateEndpoint,
which moto lacks: here it really starts the new containers.

The two-container pipelines of tests/aws_pipelines.py run on the references `sm-compose build`
recorded for two small containers (the `images` fixture), so they run as local processes: no
engine, no image build, fast enough for every CI run. One test runs a stub image under each
engine, as SageMaker runs an image.
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
from click.testing import CliRunner

from composer.aws.deploy import delete, deploy, status
from composer.aws.report import Quiet
from composer.cli import cli
from composer.runners.engine import Engine
from composer.runners.oci import ENDPOINT_LABEL
from tests import aws_pipelines
from tests.aws_pipelines import ROLE, plan_for, tiny_model
from tests.e2e.conftest import Up, running_local, write_pipeline
from tests.integration.aws_fixtures import Recorder, recorded_clients
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


# --- the pipelines of tests/aws_pipelines.py, as local processes --------------------------------


def _nlp(folder: Path, images: dict[str, str], **given: Any) -> Path:
    """tests/aws_pipelines.py's pipeline on the two built containers."""
    built = (images["greeter"], images["echo"])
    return aws_pipelines.write_pipeline(folder, images=built, **given)


def _cli(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_changed_redeploy_updates_and_cleans_up(
    sagemaker_on_local: Up, images: dict[str, str], tmp_path: Path
) -> None:
    recorder = Recorder()
    clients = recorded_clients(recorder)
    first = plan_for(_nlp(tmp_path, images, mode="Serial"))
    deploy(first, clients, Quiet())
    old = first.requests("sagemaker-us-east-1-123456789012")
    recorder.clear()

    second = plan_for(_nlp(tmp_path, images, mode="Serial", extra_env="v2"))
    outcome = deploy(second, clients, Quiet())
    new = second.requests("sagemaker-us-east-1-123456789012")
    assert (outcome.action, outcome.status) == ("updated", "InService")
    assert recorder.sent("UpdateEndpoint") == [
        {"EndpointName": "nlp-serial", "EndpointConfigName": new.endpoint_config_name}
    ]
    assert "CreateEndpoint" not in recorder.ops()
    assert recorder.sent("CreateModel")[0]["Containers"][0]["Environment"] == {"STAGE": "v2"}
    assert recorder.sent("DeleteModel") == [{"ModelName": old.model_name}]
    assert recorder.sent("DeleteEndpointConfig") == [
        {"EndpointConfigName": old.endpoint_config_name}
    ]
    models = [m["ModelName"] for m in clients.sagemaker.list_models()["Models"]]
    assert models == [new.model_name]
    described = clients.sagemaker.describe_endpoint(EndpointName="nlp-serial")
    assert described["EndpointConfigName"] == new.endpoint_config_name
    answer = sagemaker_on_local.client().invoke_endpoint(  # greeter, then echo
        EndpointName="nlp-serial", Body=b'{"name": "v2"}', ContentType="application/json"
    )
    assert json.loads(answer["Body"].read()) == {"message": "hello, v2"}


def test_delete_removes_everything_and_is_idempotent(
    sagemaker_on_local: Up, images: dict[str, str], tmp_path: Path
) -> None:
    recorder = Recorder()
    clients = recorded_clients(recorder)
    deploy(plan_for(_nlp(tmp_path, images, autoscaling=True)), clients, Quiet())
    plan = plan_for(_nlp(tmp_path, images, autoscaling=True, extra_env="v2"))
    deploy(plan, clients, Quiet(), wait=None)  # leaves the old ones around
    assert len(clients.sagemaker.list_models()["Models"]) == 2

    outcome = delete(plan.pipeline, clients, Quiet())
    assert "endpoint nlp-direct" in outcome.deleted
    assert clients.sagemaker.list_models()["Models"] == []
    assert clients.sagemaker.list_endpoint_configs()["EndpointConfigs"] == []
    assert clients.sagemaker.list_endpoints()["Endpoints"] == []
    targets = clients.autoscaling.describe_scalable_targets(ServiceNamespace="sagemaker")
    assert targets["ScalableTargets"] == []
    assert status(plan.pipeline, clients) is None

    again = delete(plan.pipeline, clients, Quiet())
    assert (again.action, again.deleted) == ("absent", [])


@pytest.mark.parametrize("mode", ["Direct", "Serial"])
def test_cli_deploy_update_delete(
    sagemaker_on_local: Up, images: dict[str, str], tmp_path: Path, mode: str
) -> None:
    recorder = Recorder()
    clients = recorded_clients(recorder)
    path = _nlp(tmp_path, images, mode=mode, autoscaling=True)
    outcome = deploy(plan_for(path), clients, Quiet())
    assert outcome.action == "created"
    (model,) = recorder.sent("CreateModel")
    assert model["InferenceExecutionConfig"] == {"Mode": mode}
    assert [c["ContainerHostname"] for c in model["Containers"]] == ["spacy", "textblob"]
    assert clients.sagemaker.meta.endpoint_url == sagemaker_on_local.url
    assert recorder.ops("application-autoscaling").count("RegisterScalableTarget") == 1

    code, out, err = _cli("status", str(path), "--json")
    assert code == 0, err
    assert json.loads(out)["status"] == "InService"

    changed = _nlp(tmp_path, images, mode=mode, autoscaling=True, extra_env="v2")
    code, out, err = _cli("deploy", str(changed))
    assert code == 0, err
    assert "updated, InService" in out
    described = clients.sagemaker.describe_endpoint(EndpointName=f"nlp-{mode.lower()}")
    assert (
        described["EndpointConfigName"] != recorder.sent("CreateEndpoint")[0]["EndpointConfigName"]
    )
    assert len(clients.sagemaker.list_models()["Models"]) == 1

    code, out, err = _cli("delete", str(changed))
    assert code == 0, err
    assert clients.sagemaker.list_models()["Models"] == []
    assert clients.sagemaker.list_endpoints()["Endpoints"] == []
    code, out, err = _cli("delete", str(changed))
    assert (code, out.strip()) == (0, f"nlp-{mode.lower()}: nothing to delete")
    code, out, err = _cli("status", str(changed))
    assert code == 1 and "not deployed" in out


def test_transform_on_sagemaker_runs_on_local_and_writes_to_s3(
    sagemaker_on_local: Up, images: dict[str, str], tmp_path: Path
) -> None:
    """`transform --on-sagemaker`, unchanged, with SageMaker at `local` and S3 at moto's: the
    model data goes up, the job runs the local batch transform and its .out objects land in S3."""
    import boto3

    s3 = boto3.client("s3", region_name="us-east-1")
    for bucket in ("models-bucket", "data-in", "data-out"):
        s3.create_bucket(Bucket=bucket)
    records = {"a.jsonl": ["ann", "bob"], "b.jsonl": ["cy"]}
    for key, names in records.items():
        body = "".join(json.dumps({"name": n}) + "\n" for n in names)
        s3.put_object(Bucket="data-in", Key=f"texts/{key}", Body=body.encode())
    path = _nlp(tmp_path, images, mode="Serial", bucket="models-bucket")
    options = ["--input", "s3://data-in/texts/", "--output", "s3://data-out/results/"]
    options += ["--content-type", "application/json", "--split-type", "Line"]
    options += ["--strategy", "SingleRecord", "--assemble-with", "Line"]
    options += ["--job-name", "local-job", "--poll-interval", "0.2"]
    done = subprocess.run(
        [sys.executable, "-m", "composer", "transform", str(path), "--on-sagemaker", *options],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr + done.stdout
    assert "local-job: Completed (output s3://data-out/results/)" in done.stdout
    for key, names in records.items():
        found = s3.get_object(Bucket="data-out", Key=f"results/{key}.out")["Body"].read()
        answers = [json.loads(line) for line in found.decode().splitlines()]
        assert answers == [{"message": f"hello, {n}"} for n in names]
    described = sagemaker_on_local.sagemaker().describe_transform_job(TransformJobName="local-job")
    assert described["TransformJobStatus"] == "Completed"
    assert described["ModelName"] == plan_for(path).requests("models-bucket").model_name
