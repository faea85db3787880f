"""`sm-compose local` and `up`'s control plane, driven by clients nobody here wrote.

Plain boto3 runs the seed notebook's flow; the AWS CLI and sagemaker-core run theirs. The images
are what `sm-compose build` printed for two small containers, so they run as local processes.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from botocore.exceptions import ClientError, WaiterError

from composer.aws.lockfile import lock_path, write_lock
from composer.cache import ENV_VAR_CACHE, cache_dir
from composer.render.builds import RECORD_NAME
from composer.runners.engine import Engine
from composer.runners.oci import ENDPOINT_LABEL
from tests.e2e.conftest import (
    REPO,
    Up,
    built_images,
    faulty_pipeline,
    invoking_meanwhile,
    kill_tree,
    processes_under,
    running_local,
    running_up,
    small_pipeline,
    start_local,
    wait_status,
    write_pipeline,
)
from tests.integration.test_engine import Built
from tests.integration.test_engine import stub_image as stub_image  # the session fixture
from tests.sagemaker_shapes import ShapeRecorder

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROLE = "arn:aws:iam::123456789012:role/SageMakerExecution"


@pytest.fixture
def local() -> Iterator[Up]:
    with running_local(ready=60) as up:
        yield up
    # after the block: SIGTERM has stopped it
    assert up.proc.returncode == 0, "\n".join(up.lines[-30:])
    root = _root(up)
    if root is not None:
        assert processes_under(root) == []


def _root(up: Up) -> Path | None:
    """The working folder of `local` (from a container's log path), once one started."""
    for line in up.lines:
        found = re.search(r"\(log (/\S+/sm-compose-local-[^/]+)/", line)
        if found:
            return Path(found.group(1))
    return None


def _direct_model(sm: Any, name: str, images: dict[str, str], **echo_env: str) -> None:
    sm.create_model(
        ModelName=name,
        ExecutionRoleArn=ROLE,
        Containers=[
            {"ContainerHostname": "greeter", "Image": images["greeter"]},
            {"ContainerHostname": "echo", "Image": images["echo"], "Environment": echo_env},
        ],
        InferenceExecutionConfig={"Mode": "Direct"},
    )


def _config(sm: Any, name: str, model: str) -> None:
    sm.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[
            {
                "VariantName": "prod",
                "ModelName": model,
                "InstanceType": "ml.r5.24xlarge",
                "InitialInstanceCount": 1,
                "InitialVariantWeight": 1.0,
            }
        ],
    )


def _single(sm: Any, name: str, image: str, **env: str) -> None:
    """A one-container model and a config of the same name serving it."""
    sm.create_model(ModelName=name, PrimaryContainer={"Image": image, "Environment": env})
    variants = [{"VariantName": "v", "ModelName": name}]
    sm.create_endpoint_config(EndpointConfigName=name, ProductionVariants=variants)


def _invoke(up: Up, endpoint: str, hostname: str | None) -> tuple[Any, str]:
    target = {"TargetContainerHostname": hostname} if hostname else {}
    answer = up.client().invoke_endpoint(
        EndpointName=endpoint,
        ContentType="application/json",
        Body=json.dumps({"name": "local"}).encode(),
        **target,
    )
    return json.loads(answer["Body"].read()), answer["ResponseMetadata"]["HTTPHeaders"][
        "x-amzn-invoked-production-variant"
    ]


def test_the_seed_notebook_flow_with_plain_boto3(local: Up, images: dict[str, str]) -> None:
    sm = local.sagemaker()
    recorder = ShapeRecorder(sm)
    _direct_model(sm, "nb-model", images)
    _config(sm, "nb-config", "nb-model")
    started = time.monotonic()
    sm.create_endpoint(EndpointName="nb", EndpointConfigName="nb-config")
    assert time.monotonic() - started < 12  # the documented 10 s bound, plus a call
    described = wait_status(sm, "nb")
    assert described["EndpointStatus"] == "InService", described
    variant = described["ProductionVariants"][0]
    assert variant["VariantName"] == "prod"
    assert [i["SpecifiedImage"] for i in variant["DeployedImages"]] == list(images.values())
    assert _invoke(local, "nb", "greeter") == ({"message": "hello, local"}, "prod")
    assert _invoke(local, "nb", "echo") == ({"name": "local"}, "prod")
    assert [e["EndpointName"] for e in sm.list_endpoints()["Endpoints"]] == ["nb"]
    sm.update_endpoint_weights_and_capacities(
        EndpointName="nb",
        DesiredWeightsAndCapacities=[{"VariantName": "prod", "DesiredWeight": 0.5}],
    )
    variant = sm.describe_endpoint(EndpointName="nb")["ProductionVariants"][0]
    assert variant["CurrentWeight"] == variant["DesiredWeight"] == 0.5
    with pytest.raises(ClientError, match="got 5; the local SageMaker runs 1 to 4 instances"):
        sm.update_endpoint_weights_and_capacities(
            EndpointName="nb",
            DesiredWeightsAndCapacities=[{"VariantName": "prod", "DesiredInstanceCount": 5}],
        )

    # UpdateEndpoint to a config that cannot start: the old one goes on serving.
    _direct_model(sm, "nb-broken", images, FAULTY_FAIL_ON_LOAD="broken on purpose")
    _config(sm, "nb-broken-config", "nb-broken")
    sm.update_endpoint(EndpointName="nb", EndpointConfigName="nb-broken-config")
    assert _invoke(local, "nb", "greeter")[0] == {"message": "hello, local"}
    described = wait_status(sm, "nb")
    assert described["EndpointStatus"] == "InService"
    assert described["EndpointConfigName"] == "nb-config"
    assert "broken on purpose" in described["FailureReason"]

    # UpdateEndpoint to a good config while requests run: none fails, traffic switches.
    _direct_model(sm, "nb-v2", images, SOMETHING_NEW="1")
    _config(sm, "nb-v2-config", "nb-v2")
    failures: list[str] = []
    done = threading.Event()

    def load() -> None:
        client = local.client()
        while not done.is_set():
            try:
                client.invoke_endpoint(
                    EndpointName="nb", TargetContainerHostname="echo", Body=b"{}"
                )
            except Exception as exc:  # any failure during the switch is the test's finding
                failures.append(str(exc))

    worker = threading.Thread(target=load)
    worker.start()
    try:
        sm.update_endpoint(EndpointName="nb", EndpointConfigName="nb-v2-config")
        described = wait_status(sm, "nb")
        time.sleep(1)  # requests on the new set
    finally:
        done.set()
        worker.join(timeout=30)
    assert described["EndpointStatus"] == "InService"
    assert described["EndpointConfigName"] == "nb-v2-config"
    assert "FailureReason" not in described
    assert failures == []

    sm.delete_endpoint(EndpointName="nb")
    with pytest.raises(ClientError) as exc:
        sm.describe_endpoint(EndpointName="nb")
    assert exc.value.response["Error"]["Code"] == "ValidationException"
    assert 'Could not find endpoint "nb"' in str(exc.value)
    for model in ("nb-model", "nb-broken", "nb-v2"):
        sm.delete_model(ModelName=model)
    assert recorder.problems == []
    assert {
        "CreateEndpoint",
        "DescribeEndpoint",
        "UpdateEndpoint",
        "UpdateEndpointWeightsAndCapacities",
        "DeleteEndpoint",
    } <= recorder.seen


def test_a_container_that_fails_to_start_fails_the_endpoint_with_its_log(
    local: Up, images: dict[str, str]
) -> None:
    sm = local.sagemaker()
    _single(sm, "broken", images["echo"], FAULTY_FAIL_ON_LOAD="cannot load on purpose")
    sm.create_endpoint(EndpointName="broken", EndpointConfigName="broken")
    described = wait_status(sm, "broken")
    assert described["EndpointStatus"] == "Failed"
    reason = described["FailureReason"]
    assert "container-1 exited" in reason and "cannot load on purpose" in reason
    assert len(reason) <= 1024
    with pytest.raises(WaiterError, match="Failed"):  # boto3's waiter stops at Failed
        sm.get_waiter("endpoint_in_service").wait(
            EndpointName="broken", WaiterConfig={"Delay": 1, "MaxAttempts": 3}
        )


def test_endpoints_start_and_stop_at_once_and_one_still_creating_can_be_deleted(
    local: Up, images: dict[str, str]
) -> None:
    sm = local.sagemaker()
    _single(sm, "hangs", images["echo"], FAULTY_HANG_ON_LOAD="1")
    _direct_model(sm, "pair", images)
    _config(sm, "pair", "pair")
    errors: list[BaseException] = []

    def create(name: str, config: str) -> None:
        try:
            local.sagemaker().create_endpoint(EndpointName=name, EndpointConfigName=config)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [
        threading.Thread(target=create, args=(name, config))
        for name, config in (("hangs", "hangs"), ("one", "pair"), ("two", "pair"))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert sm.describe_endpoint(EndpointName="hangs")["EndpointStatus"] == "Creating"
    for name in ("one", "two"):
        assert wait_status(sm, name)["EndpointStatus"] == "InService"
        assert _invoke(local, name, "greeter")[0] == {"message": "hello, local"}
    sm.delete_endpoint(EndpointName="hangs")  # still Creating: its start is cancelled
    sm.delete_endpoint(EndpointName="one")
    with pytest.raises(ClientError, match='Could not find endpoint "hangs"'):
        sm.describe_endpoint(EndpointName="hangs")
    assert _invoke(local, "two", "echo")[0] == {"name": "local"}  # no crosstalk
    root = _root(local)
    assert root is not None
    deadline = time.monotonic() + 60
    while any("/hangs-" in cmd or "/one-" in cmd for _, cmd in processes_under(root)):
        assert time.monotonic() < deadline, processes_under(root)
        time.sleep(0.5)


def _aws() -> str:
    found = shutil.which("aws") or str(Path(sys.executable).parent / "aws")
    if not Path(found).exists():
        pytest.skip("the AWS CLI (awscli, in the dev extra) is not installed")
    return found


def test_the_aws_cli(local: Up, images: dict[str, str], tmp_path: Path) -> None:
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_MAX_ATTEMPTS": "1",
    }
    env.pop("AWS_PROFILE", None)

    def aws(*args: str) -> Any:
        done = subprocess.run(
            [_aws(), *args, "--endpoint-url", local.url, "--output", "json"],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout) if done.stdout.strip() else None

    container = json.dumps({"Image": images["greeter"]})
    created = aws(
        "sagemaker", "create-model", "--model-name", "cli", "--primary-container", container
    )
    assert created["ModelArn"].endswith(":model/cli")
    variant = json.dumps([{"VariantName": "AllTraffic", "ModelName": "cli"}])
    aws("sagemaker", "create-endpoint-config", "--endpoint-config-name", "cli",
        "--production-variants", variant)  # fmt: skip
    aws("sagemaker", "create-endpoint", "--endpoint-name", "cli", "--endpoint-config-name", "cli")
    deadline = time.monotonic() + 120
    while (status := aws("sagemaker", "describe-endpoint", "--endpoint-name", "cli"))[
        "EndpointStatus"
    ] == "Creating":
        assert time.monotonic() < deadline
        time.sleep(0.5)
    assert status["EndpointStatus"] == "InService"
    listed = aws("sagemaker", "list-endpoints")
    assert [e["EndpointName"] for e in listed["Endpoints"]] == ["cli"]
    out = tmp_path / "answer.json"
    answer = aws(
        "sagemaker-runtime", "invoke-endpoint", "--endpoint-name", "cli",
        "--content-type", "application/json", "--body", '{"name": "cli"}', str(out),
    )  # fmt: skip
    assert answer["ContentType"].startswith("application/json")
    assert json.loads(out.read_text()) == {"message": "hello, cli"}
    aws("sagemaker", "delete-endpoint", "--endpoint-name", "cli")


def test_sagemaker_core(local: Up, images: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("sagemaker.core.resources", reason="sagemaker-core is not installed")
    for variable in ("AWS_ENDPOINT_URL_SAGEMAKER", "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME"):
        monkeypatch.setenv(variable, local.url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    from sagemaker.core.resources import Endpoint, EndpointConfig, Model
    from sagemaker.core.shapes import (
        ContainerDefinition,
        InferenceExecutionConfig,
        ProductionVariant,
    )

    model = Model.create(
        model_name="core-model",
        execution_role_arn=ROLE,
        containers=[
            ContainerDefinition(container_hostname="greeter", image=images["greeter"]),
            ContainerDefinition(container_hostname="echo", image=images["echo"]),
        ],
        inference_execution_config=InferenceExecutionConfig(mode="Serial"),
    )
    EndpointConfig.create(
        endpoint_config_name="core-config",
        production_variants=[
            ProductionVariant(
                variant_name="prod",
                model_name=model.model_name,
                instance_type="ml.r5.24xlarge",
                initial_instance_count=1,
            )
        ],
    )
    endpoint = Endpoint.create(endpoint_name="core", endpoint_config_name="core-config")
    endpoint.wait_for_status("InService")
    answer = Endpoint.get("core").invoke(
        body=json.dumps({"name": "core"}), content_type="application/json"
    )
    # Serial: the greeter's answer goes on to the echo container, which returns it
    assert json.loads(answer.body.read()) == {"message": "hello, core"}
    endpoint.delete()
    endpoint.wait_for_delete()


def test_local_warns_when_it_listens_beyond_loopback() -> None:
    with running_local("--host", "0.0.0.0") as up:
        warning = up.wait_for("reachable from other machines", 5)
        assert "no authentication" in warning
        assert up.sagemaker().list_endpoints()["Endpoints"] == []
    assert up.proc.returncode == 0


def test_up_serves_the_control_plane_too(tmp_path: Path, images: dict[str, str]) -> None:
    pipeline = faulty_pipeline(tmp_path, "upcp", {"echo": {}})
    with running_up(pipeline) as up:
        sm = up.sagemaker()
        recorder = ShapeRecorder(sm)
        described = sm.describe_endpoint(EndpointName="upcp")
        assert described["EndpointStatus"] == "InService"
        model = sm.list_models()["Models"][0]["ModelName"]
        assert model.startswith("upcp-")
        assert sm.describe_model(ModelName=model)["PrimaryContainer"]["Image"]
        assert described["EndpointConfigName"] in [
            c["EndpointConfigName"] for c in sm.list_endpoint_configs()["EndpointConfigs"]
        ]
        assert recorder.problems == []
        answer = up.client().invoke_endpoint(EndpointName="upcp", Body=b'{"a": 1}')
        assert json.loads(answer["Body"].read()) == {"a": 1}
        assert any(re.match(r"echo +\| ", line) for line in up.lines)  # as `up` always printed
        (own,) = _served(up, "upcp")
        # up's images are its own (no `sm-compose build` recorded them): a second copy cannot
        # start, and up's copy serves on, InService with the reason
        variant = described["ProductionVariants"][0]["VariantName"]
        sm.update_endpoint_weights_and_capacities(
            EndpointName="upcp",
            DesiredWeightsAndCapacities=[{"VariantName": variant, "DesiredInstanceCount": 2}],
        )
        described = wait_status(sm, "upcp")
        assert described["EndpointStatus"] == "InService"
        assert "runs only under an OCI engine" in described["FailureReason"]
        counts = described["ProductionVariants"][0]
        assert counts["CurrentInstanceCount"] == counts["DesiredInstanceCount"] == 1
        assert _served(up, "upcp") == [own]
        answer = up.client().invoke_endpoint(EndpointName="upcp", Body=b'{"a": 2}')
        assert json.loads(answer["Body"].read()) == {"a": 2}
        _single(sm, "beside", images["greeter"])  # another endpoint beside up's
        sm.create_endpoint(EndpointName="beside", EndpointConfigName="beside")
        assert wait_status(sm, "beside")["EndpointStatus"] == "InService"
        assert _invoke(up, "beside", None)[0] == {"message": "hello, local"}
        assert [e["EndpointName"] for e in sm.list_endpoints(SortBy="Name")["Endpoints"]] == [
            "upcp",
            "beside",
        ]
        root = _root(up)
    assert up.proc.returncode == 0
    assert root is not None and processes_under(root) == [] and not root.exists()


@pytest.mark.engine
def test_an_image_no_build_made_runs_under_the_engine(engine: Engine, stub_image: Built) -> None:
    """`local --engine`: a foreign image (the engine tests' stub) runs as SageMaker runs it."""
    with running_local("--engine", engine.name, ready=60) as up:
        sm = up.sagemaker()
        _single(sm, "stub", stub_image.tag)
        sm.create_endpoint(EndpointName="stub", EndpointConfigName="stub")
        described = wait_status(sm, "stub")
        assert described["EndpointStatus"] == "InService", described
        images = described["ProductionVariants"][0]["DeployedImages"]
        assert [i["SpecifiedImage"] for i in images] == [stub_image.tag]
        # The stub serves GET only: its 501 to /invocations comes back as SageMaker's ModelError.
        with pytest.raises(ClientError) as exc:
            up.client().invoke_endpoint(EndpointName="stub", Body=b"{}")
        assert exc.value.response["Error"]["Code"] == "ModelError"
        sm.delete_endpoint(EndpointName="stub")
    assert up.proc.returncode == 0
    assert engine.containers_labelled(ENDPOINT_LABEL, "stub") == []


@pytest.mark.engine
def test_a_killed_local_leaves_containers_and_files_that_the_next_local_removes(
    engine: Engine, stub_image: Built
) -> None:
    first = start_local("--engine", engine.name)
    try:
        first.wait_for("ready at", 60)
        sm = first.sagemaker()
        _single(sm, "stub", stub_image.tag)
        sm.create_endpoint(EndpointName="stub", EndpointConfigName="stub")
        assert wait_status(sm, "stub")["EndpointStatus"] == "InService"
        left = set(engine.containers_labelled(ENDPOINT_LABEL, "stub"))
        assert len(left) == 1
        kill_tree(first)
        assert set(engine.containers_labelled(ENDPOINT_LABEL, "stub")) == left
        root = _root(first)
        assert root is not None and root.is_dir()  # its working folder, left behind too
        with running_local("--engine", engine.name, ready=60) as again:
            for name in left:
                assert any(f"removing leftover container {name}" in x for x in again.lines)
                assert not engine.container_exists(name)
            assert not root.exists()
    finally:
        if first.proc.poll() is None:
            first.proc.kill()


def test_a_transform_job_runs_the_local_batch_transform(
    local: Up, images: dict[str, str], tmp_path: Path
) -> None:
    sm = local.sagemaker()
    recorder = ShapeRecorder(sm)
    source = tmp_path / "in"
    source.mkdir()
    (source / "records.jsonl").write_text('{"a": 1}\n{"a": 2}\n{"a": 3}\n')
    written = tmp_path / "out"
    sm.create_model(ModelName="batch", PrimaryContainer={"Image": images["echo"]})

    def create(name: str, **more: Any) -> None:
        sm.create_transform_job(
            TransformJobName=name,
            ModelName="batch",
            TransformInput={
                "DataSource": {
                    "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": source.as_uri()}
                },
                "ContentType": "application/json",
                "SplitType": "Line",
            },
            TransformOutput={"S3OutputPath": str(written / name), "AssembleWith": "Line"},
            TransformResources={"InstanceType": "ml.m5.large", "InstanceCount": 1},
            BatchStrategy="SingleRecord",
            **more,
        )

    create("echo-job", Environment={"JOB_ONLY": "1"})
    sm.get_waiter("transform_job_completed_or_stopped").wait(
        TransformJobName="echo-job", WaiterConfig={"Delay": 1, "MaxAttempts": 120}
    )
    described = sm.describe_transform_job(TransformJobName="echo-job")
    assert described["TransformJobStatus"] == "Completed", described
    assert described["Environment"] == {"JOB_ONLY": "1"}
    lines = (written / "echo-job" / "records.jsonl.out").read_text().splitlines()
    assert [json.loads(line) for line in lines] == [{"a": 1}, {"a": 2}, {"a": 3}]
    listed = sm.list_transform_jobs(StatusEquals="Completed")["TransformJobSummaries"]
    assert [j["TransformJobName"] for j in listed] == ["echo-job"]

    create("stopped-job", Environment={"FAULTY_HANG_ON_LOAD": "1"})
    assert sm.describe_transform_job(TransformJobName="stopped-job")["TransformJobStatus"] == (
        "InProgress"
    )
    sm.stop_transform_job(TransformJobName="stopped-job")
    sm.get_waiter("transform_job_completed_or_stopped").wait(
        TransformJobName="stopped-job", WaiterConfig={"Delay": 1, "MaxAttempts": 60}
    )
    assert sm.describe_transform_job(TransformJobName="stopped-job")["TransformJobStatus"] == (
        "Stopped"
    )
    assert recorder.problems == []
    assert {
        "CreateTransformJob",
        "DescribeTransformJob",
        "ListTransformJobs",
        "StopTransformJob",
    } <= (recorder.seen)


def test_a_multi_model_container_loads_each_target_model(local: Up, tmp_path: Path) -> None:
    """Mode MultiModel with a file:// prefix of archives: TargetModel picks the spaCy pipeline."""
    text = (REPO / "pipelines" / "nlp-multi-model.yaml").read_text()
    pipeline = write_pipeline(tmp_path, text.replace("../", f"{REPO}/"))
    subprocess.run(
        [sys.executable, "-m", "composer", "build", str(pipeline)], check=True, timeout=120
    )
    document = json.loads(
        (
            tmp_path / ".composer" / "nlp-multi-model" / "build" / "sagemaker" / "create_model.json"
        ).read_text()
    )
    image = document["PrimaryContainer"]["Image"]
    sm = local.sagemaker()
    models = (REPO / "artifacts" / "spacy-models").as_uri() + "/"
    sm.create_model(
        ModelName="mme",
        PrimaryContainer={"Image": image, "Mode": "MultiModel", "ModelDataUrl": models},
    )
    variants = [{"VariantName": "v", "ModelName": "mme"}]
    sm.create_endpoint_config(EndpointConfigName="mme", ProductionVariants=variants)
    sm.create_endpoint(EndpointName="mme", EndpointConfigName="mme")
    assert wait_status(sm, "mme", timeout=600)["EndpointStatus"] == "InService"
    for model, name in (("en-rules.tar.gz", "en_rules"), ("de-rules.tar.gz", "de_regeln")):
        answer = local.client().invoke_endpoint(
            EndpointName="mme",
            TargetModel=model,
            ContentType="application/json",
            Body=json.dumps({"text": "Apple is looking at buying a startup in London."}).encode(),
        )
        assert json.loads(answer["Body"].read())["model"]["name"] == name


def _two_variants(sm: Any, name: str, image: str, a: float, b: float) -> dict[str, Any]:
    """Model, config and endpoint `name`: variants a and b of one container, weighed a:b; its
    description once InService."""
    sm.create_model(ModelName=name, PrimaryContainer={"Image": image})
    sm.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[
            {"VariantName": "a", "ModelName": name, "InitialVariantWeight": a},
            {"VariantName": "b", "ModelName": name, "InitialVariantWeight": b},
        ],
    )
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
    described = wait_status(sm, name)
    assert described["EndpointStatus"] == "InService", described
    return described


def test_two_variants_split_traffic_by_weight_and_take_new_weights_live(
    local: Up, images: dict[str, str]
) -> None:
    """Weights 1:3 split requests about 1:3; TargetVariant picks one; the response header names
    the variant that answered; UpdateEndpointWeightsAndCapacities moves traffic with no request
    failing meanwhile."""
    sm = local.sagemaker()
    described = _two_variants(sm, "split", images["greeter"], 1.0, 3.0)
    weights = {v["VariantName"]: v["CurrentWeight"] for v in described["ProductionVariants"]}
    assert weights == {"a": 1.0, "b": 3.0}
    answered = [_invoke(local, "split", None)[1] for _ in range(40)]
    assert 22 <= answered.count("b") <= 38, answered
    assert answered.count("a") + answered.count("b") == 40
    runtime = local.client()
    for name in ("a", "b"):
        answer = runtime.invoke_endpoint(
            EndpointName="split",
            TargetVariant=name,
            ContentType="application/json",
            Body=b'{"name": "x"}',
        )
        assert answer["InvokedProductionVariant"] == name
    with pytest.raises(ClientError, match="Variant c does not exist on endpoint split"):
        runtime.invoke_endpoint(
            EndpointName="split", TargetVariant="c", ContentType="application/json", Body=b"{}"
        )

    with invoking_meanwhile(lambda: _invoke(local, "split", None)) as failures:
        sm.update_endpoint_weights_and_capacities(
            EndpointName="split",
            DesiredWeightsAndCapacities=[{"VariantName": "a", "DesiredWeight": 0.0}],
        )
    assert failures == []
    assert {_invoke(local, "split", None)[1] for _ in range(20)} == {"b"}
    described = sm.describe_endpoint(EndpointName="split")
    weights = {v["VariantName"]: v["CurrentWeight"] for v in described["ProductionVariants"]}
    assert weights == {"a": 0.0, "b": 3.0}


def test_instances_each_serve_and_their_count_changes_live(
    local: Up, images: dict[str, str]
) -> None:
    """InitialInstanceCount 2 runs two copies that both answer, the less busy one first;
    UpdateEndpointWeightsAndCapacities takes the count to 1 with no request failing meanwhile;
    above the cap is refused."""
    sm = local.sagemaker()
    sm.create_model(ModelName="twice", PrimaryContainer={"Image": images["echo"]})
    five = [{"VariantName": "v", "ModelName": "twice", "InitialInstanceCount": 5}]
    sm.create_endpoint_config(EndpointConfigName="five", ProductionVariants=five)
    with pytest.raises(ClientError, match=r"InitialInstanceCount: got 5; .* runs 1 to 4") as e:
        sm.create_endpoint(EndpointName="five", EndpointConfigName="five")
    assert e.value.response["Error"]["Code"] == "ValidationException"
    sm.create_endpoint_config(
        EndpointConfigName="twice",
        ProductionVariants=[{"VariantName": "v", "ModelName": "twice", "InitialInstanceCount": 2}],
    )
    sm.create_endpoint(EndpointName="twice", EndpointConfigName="twice")
    described = wait_status(sm, "twice")
    assert described["EndpointStatus"] == "InService", described
    variant = described["ProductionVariants"][0]
    assert variant["CurrentInstanceCount"] == variant["DesiredInstanceCount"] == 2
    runtime = local.client()

    def whoami() -> str:
        answer = runtime.invoke_endpoint(
            EndpointName="twice", ContentType="application/json", Body=b'{"whoami": 1}'
        )
        return str(json.loads(answer["Body"].read()))

    assert len({whoami() for _ in range(6)}) == 2

    # the least loaded copy answers: while one is busy, the other takes every request
    slow: list[str] = []
    busy = threading.Thread(
        target=lambda: slow.append(
            str(
                json.loads(
                    runtime.invoke_endpoint(
                        EndpointName="twice",
                        ContentType="application/json",
                        Body=b'{"whoami": 1, "sleep": 3}',
                    )["Body"].read()
                )
            )
        )
    )
    busy.start()
    time.sleep(1)
    meanwhile = {whoami() for _ in range(5)}
    busy.join()
    assert len(meanwhile) == 1 and slow and meanwhile != set(slow), (meanwhile, slow)

    with invoking_meanwhile(whoami) as failures:
        sm.update_endpoint_weights_and_capacities(
            EndpointName="twice",
            DesiredWeightsAndCapacities=[{"VariantName": "v", "DesiredInstanceCount": 1}],
        )
        described = wait_status(sm, "twice")
    assert failures == []
    assert described["EndpointStatus"] == "InService", described
    assert described["ProductionVariants"][0]["CurrentInstanceCount"] == 1
    assert len({whoami() for _ in range(6)}) == 1


def _counter_image(folder: Path) -> str:
    """`sm-compose build` of containers/session-counter: the image reference it records."""
    spec = {
        "name": "counted",
        "containers": [
            {"hostname": "counter", "build": str(REPO / "containers" / "session-counter")}
        ],
    }
    return built_images(write_pipeline(folder, spec))["counter"]


def test_a_session_stays_on_the_instance_that_opened_it(local: Up, tmp_path: Path) -> None:
    """Two instances of containers/session-counter, each counting in its own folder: every
    request of the session reaches the copy that opened it, so the count goes on."""
    sm = local.sagemaker()
    sm.create_model(ModelName="counted", PrimaryContainer={"Image": _counter_image(tmp_path)})
    variants = [{"VariantName": "v", "ModelName": "counted", "InitialInstanceCount": 2}]
    sm.create_endpoint_config(EndpointConfigName="counted", ProductionVariants=variants)
    sm.create_endpoint(EndpointName="counted", EndpointConfigName="counted")
    assert wait_status(sm, "counted")["EndpointStatus"] == "InService"
    runtime = local.client()
    call = {"EndpointName": "counted", "ContentType": "application/json", "Body": b"{}"}
    opened = runtime.invoke_endpoint(**call, SessionId="NEW_SESSION")
    session = opened["NewSessionId"].split(";")[0]
    counts = [
        json.loads(runtime.invoke_endpoint(**call, SessionId=session)["Body"].read())
        for _ in range(4)
    ]
    assert [c["count"] for c in counts] == [1, 2, 3, 4], counts


def _pushed_elsewhere(folder: Path) -> tuple[Path, dict[str, str]]:
    """A pipeline of two build: containers and the lock file `push` wrote for it on another
    machine: digests no build here made, so no record (builds.json) names them."""
    folder.mkdir(parents=True, exist_ok=True)
    pipeline = small_pipeline(folder, "pushed")
    registry = "123456789012.dkr.ecr.us-east-1.amazonaws.com"
    uris = {h: f"{registry}/pushed-{h}@sha256:{secrets.token_hex(32)}" for h in ("greeter", "echo")}
    write_lock(lock_path(pipeline), uris)
    return pipeline, uris


def test_a_lock_file_from_another_machine_runs_its_images_as_processes(tmp_path: Path) -> None:
    """`local --pipeline FILE`: a model naming the URIs FILE's lock file pins runs from the
    build: folders, as processes, with no engine and no build record on this machine."""
    pipeline, uris = _pushed_elsewhere(tmp_path / "project")
    fresh = tmp_path / "cache"  # a cache with no builds.json (environments shared, as built)
    fresh.mkdir()
    (fresh / "envs").symlink_to(cache_dir() / "envs", target_is_directory=True)
    env = {ENV_VAR_CACHE: str(fresh)}
    with running_local("--pipeline", str(pipeline), env=env, ready=60) as local:
        assert not (fresh / RECORD_NAME).exists()
        assert any("echo, greeter run as local processes" in line for line in local.lines)
        sm = local.sagemaker()
        _direct_model(sm, "pushed", uris)
        _config(sm, "pushed", "pushed")
        sm.create_endpoint(EndpointName="pushed", EndpointConfigName="pushed")
        described = wait_status(sm, "pushed")
        assert described["EndpointStatus"] == "InService", described
        images = described["ProductionVariants"][0]["DeployedImages"]
        assert [i["SpecifiedImage"] for i in images] == [uris["greeter"], uris["echo"]]
        assert _invoke(local, "pushed", "greeter")[0] == {"message": "hello, local"}
        assert _invoke(local, "pushed", "echo")[0] == {"name": "local"}
        other = uris["echo"][:-4] + "0000"  # in no lock file: needs an engine
        _single(sm, "foreign", other)
        sm.create_endpoint(EndpointName="foreign", EndpointConfigName="foreign")
        failed = wait_status(sm, "foreign")
        assert failed["EndpointStatus"] == "Failed"
        assert other in failed["FailureReason"] and "--engine" in failed["FailureReason"]
    assert local.proc.returncode == 0


def test_local_refuses_a_pipeline_without_a_lock_file(tmp_path: Path) -> None:
    pipeline, _ = _pushed_elsewhere(tmp_path)
    lock_path(pipeline).unlink()
    done = subprocess.run(
        [sys.executable, "-m", "composer", "local", "--pipeline", str(pipeline)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert f"got no lock file (looked for {lock_path(pipeline)})" in done.stderr
    assert f"sm-compose push {pipeline}" in done.stderr


def test_up_runs_the_images_its_own_lock_file_pins(tmp_path: Path) -> None:
    """A model created beside `up` that names a URI of up's pipeline's lock file runs from the
    build: folder, as with `local --pipeline`."""
    pipeline, uris = _pushed_elsewhere(tmp_path)
    with running_up(pipeline) as up:
        sm = up.sagemaker()
        _single(sm, "beside", uris["greeter"])
        sm.create_endpoint(EndpointName="beside", EndpointConfigName="beside")
        assert wait_status(sm, "beside")["EndpointStatus"] == "InService"
        assert _invoke(up, "beside", None)[0] == {"message": "hello, local"}


def _served(up: Up, endpoint: str) -> list[dict[str, Any]]:
    """The gateway's own list of what serves `endpoint`: one entry per instance."""
    with urllib.request.urlopen(f"{up.url}/_composer/api/endpoints", timeout=10) as answer:
        listed = json.loads(answer.read())["endpoints"]
    return [e for e in listed if e["name"] == endpoint]


def _listening_pid(url: str) -> int:
    """The process that listens on a container's URL (its port)."""
    port = int(url.rsplit(":", 1)[1])
    for conn in psutil.net_connections(kind="tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port:
            assert conn.pid is not None
            return conn.pid
    raise AssertionError(f"nothing listens on {url}")


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_log_streams_files_prefixes_and_metrics_name_endpoint_variant_instance(
    local: Up, images: dict[str, str]
) -> None:
    """Two endpoints of two instances: a ModelError's LogStreamArn names the endpoint's log
    group and the failing copy's stream (VARIANT/INSTANCE-ID/HOSTNAME, or VARIANT/INSTANCE-ID
    for one container), whose local log file has the failure; printed lines say which endpoint,
    instance and container they come from; /metrics has a series per instance."""
    sm = local.sagemaker()
    _direct_model(sm, "logs-a", images)
    sm.create_endpoint_config(
        EndpointConfigName="logs-a",
        ProductionVariants=[
            {"VariantName": "prod", "ModelName": "logs-a", "InitialInstanceCount": 2}
        ],
    )
    sm.create_model(ModelName="logs-b", PrimaryContainer={"Image": images["echo"]})
    sm.create_endpoint_config(
        EndpointConfigName="logs-b",
        ProductionVariants=[{"VariantName": "v", "ModelName": "logs-b", "InitialInstanceCount": 2}],
    )
    for name in ("logs-a", "logs-b"):
        sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
    arns = {}
    for name in ("logs-a", "logs-b"):
        described = wait_status(sm, name)
        assert described["EndpointStatus"] == "InService", described
        arns[name] = described["EndpointArn"]
    runtime = local.client()
    streams: dict[str, set[str]] = {"logs-a": set(), "logs-b": set()}
    for name, target in (("logs-a", {"TargetContainerHostname": "echo"}), ("logs-b", {})):
        for _ in range(4):  # the cycle goes over both instances
            with pytest.raises(ClientError) as failed:
                runtime.invoke_endpoint(
                    EndpointName=name,
                    ContentType="application/json",
                    Body=b'{"status": 500}',
                    **target,
                )
            error = failed.value.response
            assert error["Error"]["Code"] == "ModelError"
            arn = error["LogStreamArn"]
            streams[name].add(arn)
            log = Path(re.findall(r"See (/\S+\.log) for more", error["Error"]["Message"])[0])
            stream = arn.split(":log-stream:")[1]
            # the local twin of the stream: logs/ENDPOINT/VARIANT/INSTANCE-ID/HOSTNAME.log
            assert log.parent.relative_to(log.parents[3]) == Path(name, *stream.split("/")[:2])
            assert log.parents[3].name == "logs"
            assert "the faulty container failed on purpose" in log.read_text()
    region, account = arns["logs-a"].split(":")[3:5]
    group = f"arn:aws:logs:{region}:{account}:log-group:/aws/sagemaker/Endpoints"
    assert streams["logs-a"] == {
        f"{group}/logs-a:log-stream:prod/local-1/echo",
        f"{group}/logs-a:log-stream:prod/local-2/echo",
    }
    assert streams["logs-b"] == {
        f"{group}/logs-b:log-stream:v/local-1",
        f"{group}/logs-b:log-stream:v/local-2",
    }
    served = _served(local, "logs-a")
    assert sorted(e["instance"] for e in served) == ["local-1", "local-2"]
    arn_of = {c["log_stream_arn"] for e in served for c in e["containers"]}
    assert streams["logs-a"] < arn_of

    prefixes = {m.group(1) for line in local.lines if (m := re.match(r"(\S+) +\| ", line))}
    for name, hosts in (("logs-a", ("greeter", "echo")), ("logs-b", ("container-1",))):
        for instance in ("local-1", "local-2"):
            for host in hosts:
                assert f"{name}/{instance}/{host}" in prefixes, sorted(prefixes)

    text = urllib.request.urlopen(f"{local.url}/metrics", timeout=10).read().decode()
    for instance in ("local-1", "local-2"):
        labels = f'container="echo",endpoint="logs-a",instance="{instance}",variant="prod"'
        assert f"Invocation5XXErrors_total{{{labels}}} 2.0" in text, text[:3000]


def test_a_session_survives_a_weight_change(local: Up, tmp_path: Path) -> None:
    """UpdateEndpointWeightsAndCapacities on two variants: the same copies serve the new split,
    so a session opened before goes on counting after."""
    sm = local.sagemaker()
    _two_variants(sm, "weighed", _counter_image(tmp_path), 1.0, 1.0)
    runtime = local.client()
    call = {"EndpointName": "weighed", "ContentType": "application/json", "Body": b"{}"}
    opened = runtime.invoke_endpoint(**call, SessionId="NEW_SESSION")
    session = opened["NewSessionId"].split(";")[0]
    variant = opened["InvokedProductionVariant"]

    def count() -> tuple[int, str]:
        answer = runtime.invoke_endpoint(**call, SessionId=session)
        return json.loads(answer["Body"].read())["count"], answer["InvokedProductionVariant"]

    assert count() == (1, variant)
    sm.update_endpoint_weights_and_capacities(
        EndpointName="weighed",
        DesiredWeightsAndCapacities=[
            {"VariantName": variant, "DesiredWeight": 0.0},
        ],
    )
    described = sm.describe_endpoint(EndpointName="weighed")
    weights = {v["VariantName"]: v["CurrentWeight"] for v in described["ProductionVariants"]}
    assert weights[variant] == 0.0
    assert [count() for _ in range(3)] == [(2, variant), (3, variant), (4, variant)]


def test_a_count_change_starts_or_stops_only_the_added_or_removed_copies(
    local: Up, tmp_path: Path
) -> None:
    """DesiredInstanceCount 1 -> 2 starts one more copy and keeps the first (the same process,
    its session open); 2 -> 1 stops the added one, the first still counting."""
    sm = local.sagemaker()
    sm.create_model(ModelName="grown", PrimaryContainer={"Image": _counter_image(tmp_path)})
    sm.create_endpoint_config(
        EndpointConfigName="grown", ProductionVariants=[{"VariantName": "v", "ModelName": "grown"}]
    )
    sm.create_endpoint(EndpointName="grown", EndpointConfigName="grown")
    assert wait_status(sm, "grown")["EndpointStatus"] == "InService"
    runtime = local.client()
    call = {"EndpointName": "grown", "ContentType": "application/json", "Body": b"{}"}
    session = runtime.invoke_endpoint(**call, SessionId="NEW_SESSION")["NewSessionId"]
    session = session.split(";")[0]

    def count() -> int:
        answer = runtime.invoke_endpoint(**call, SessionId=session)
        return int(json.loads(answer["Body"].read())["count"])

    assert count() == 1
    (first,) = _served(local, "grown")
    url = first["containers"][0]["url"]
    pid = _listening_pid(url)

    def recount(n: int) -> dict[str, Any]:
        sm.update_endpoint_weights_and_capacities(
            EndpointName="grown",
            DesiredWeightsAndCapacities=[{"VariantName": "v", "DesiredInstanceCount": n}],
        )
        described = wait_status(sm, "grown")
        assert described["EndpointStatus"] == "InService", described
        assert "FailureReason" not in described, described
        return described

    assert recount(2)["ProductionVariants"][0]["CurrentInstanceCount"] == 2
    served = {e["instance"]: e["containers"][0]["url"] for e in _served(local, "grown")}
    assert served.keys() == {first["instance"], "local-2"} and served[first["instance"]] == url
    assert _listening_pid(url) == pid
    assert [count() for _ in range(3)] == [2, 3, 4]
    added = served["local-2"]
    added_pid = _listening_pid(added)

    assert recount(1)["ProductionVariants"][0]["CurrentInstanceCount"] == 1
    assert [e["instance"] for e in _served(local, "grown")] == [first["instance"]]
    assert _listening_pid(url) == pid
    assert count() == 5
    deadline = time.monotonic() + 30
    while not _gone(added_pid):
        assert time.monotonic() < deadline, f"the removed copy {added} still runs"
        time.sleep(0.2)
