"""Asynchronous inference through the local gateway, with S3 on moto's server.

An unmodified boto3 `sagemaker-runtime` client calls InvokeEndpointAsync on the gateway in front
of a real container; the gateway reads the request from S3 and writes the answer (or the error)
back there, where an unmodified S3 client finds it.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from composer.aws.deploy import deploy
from composer.aws.plan import preflight
from composer.aws.report import Quiet
from composer.client import AsyncInvocationFailed, EndpointClient
from composer.gateway import GatewayConfig, ThreadedGateway, Upstream
from composer.runners.endpoint import running_endpoint
from composer.spec import load_pipeline
from tests.aws_pipelines import ROLE
from tests.conftest import runtime_client_for
from tests.integration.aws_fixtures import MotoServer, Recorder, recorded_clients

pytestmark = [pytest.mark.slow, pytest.mark.aws]

ROOT = Path(__file__).resolve().parents[2]
ECHO = ROOT / "tests" / "integration" / "fixtures" / "echo"
OUT = "s3://async-out/results"
FAILED = "s3://async-out/failures"


@pytest.fixture(scope="module")
def buckets(moto: MotoServer) -> MotoServer:
    s3 = boto3.client("s3")
    for bucket in ("async-in", "async-out"):
        s3.create_bucket(Bucket=bucket)
    return moto


def _pipeline(folder: Path, failure_path: str | None = FAILED) -> Path:
    path = folder / "echo.yaml"
    lines = [
        "name: echo-async",
        "containers:",
        "  - hostname: echo",
        f"    build: {ECHO}",
        "async:",
        f"  output_path: {OUT}",
        "  max_concurrent_invocations_per_instance: 2",
    ]
    if failure_path:
        lines.append(f"  failure_path: {failure_path}")
    path.write_text("\n".join(lines) + "\n")
    return path


class _Running:
    """`running_endpoint` on its own loop in a thread, so blocking boto3 calls can reach it."""

    def __init__(self, pipeline: Path) -> None:
        self.pipeline = load_pipeline(pipeline)
        self.url = ""
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        try:
            async with running_endpoint(self.pipeline, port=0, out=lambda _: None) as endpoint:
                self.url = endpoint.gateway_url
                self._ready.set()
                await self._stop.wait()
        except BaseException as exc:
            self._error = exc
            self._ready.set()

    def __enter__(self) -> _Running:
        self._thread.start()
        self._ready.wait(600)
        if self._error is not None:
            raise self._error
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(60)


@pytest.fixture(scope="module")
def endpoint(buckets: MotoServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Running]:
    with _Running(_pipeline(tmp_path_factory.mktemp("async"))) as running:
        yield running


def _runtime(url: str) -> Any:
    return runtime_client_for(url)


def _put(body: bytes) -> str:
    key = f"requests/{uuid.uuid4()}.json"
    boto3.client("s3").put_object(Bucket="async-in", Key=key, Body=body)
    return f"s3://async-in/{key}"


def _wait_for(location: str, limit: float = 60) -> bytes:
    """Poll S3 for an object (bounded; the test fails with a message if it never comes)."""
    bucket, key = location.removeprefix("s3://").split("/", 1)
    s3 = boto3.client("s3")
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            return bytes(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        except s3.exceptions.NoSuchKey:
            time.sleep(0.1)
    raise AssertionError(f"nothing appeared at {location}")


def _missing(location: str) -> bool:
    bucket, key = location.removeprefix("s3://").split("/", 1)
    found = boto3.client("s3").list_objects_v2(Bucket=bucket, Prefix=key)
    return not found.get("Contents")


def _send_json(endpoint: _Running, body: bytes, **extra: Any) -> Any:
    """InvokeEndpointAsync of a JSON body put in S3 first; the answer's fields."""
    return _runtime(endpoint.url).invoke_endpoint_async(
        EndpointName="echo-async", InputLocation=_put(body), ContentType="application/json", **extra
    )


def test_answer_appears_at_the_output_location(endpoint: _Running) -> None:
    r = _send_json(endpoint, b'{"text": "hello"}', InferenceId="first-request")
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 202
    assert r["InferenceId"] == "first-request"
    assert r["OutputLocation"] == f"{OUT}/first-request.out"
    assert r["FailureLocation"] == f"{FAILED}/first-request-error.out"
    assert _wait_for(r["OutputLocation"]) == b'{"TEXT": "HELLO"}'
    head = boto3.client("s3").head_object(Bucket="async-out", Key="results/first-request.out")
    assert head["ContentType"] == "application/json"
    assert _missing(r["FailureLocation"])


def test_a_failing_request_writes_to_the_failure_path(endpoint: _Running) -> None:
    r = _send_json(endpoint, b'{"fail": true}')
    text = _wait_for(r["FailureLocation"]).decode()
    assert text.startswith("Received client error (400) from echo with message")
    assert "this request asks to fail" in text
    assert _missing(r["OutputLocation"])


def test_missing_input_and_timeout_fail_into_the_failure_path(endpoint: _Running) -> None:
    runtime = _runtime(endpoint.url)
    r = runtime.invoke_endpoint_async(
        EndpointName="echo-async", InputLocation="s3://async-in/requests/none.json"
    )
    assert "cannot read the input s3://async-in/requests/none.json: NoSuchKey" in (
        _wait_for(r["FailureLocation"]).decode()
    )
    r = _send_json(endpoint, b'{"sleep": 3}', InvocationTimeoutSeconds=1)
    text = _wait_for(r["FailureLocation"]).decode()
    assert "timed out" in text and "echo" in text


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        ({"RequestTTLSeconds": 30000}, "RequestTTLSeconds: got 30000; it must be from 60 to 21600"),
        ({"InvocationTimeoutSeconds": 4000}, "InvocationTimeoutSeconds: got 4000"),
        ({"InputLocation": "https://example.com/x"}, "not https:// URLs"),
        ({"InputLocation": "relative/path.json"}, "give s3://BUCKET/KEY"),
        ({"EndpointName": "other"}, "Endpoint other of account 000000000000 not found."),
    ],
)
def test_bad_requests_are_validation_errors(
    endpoint: _Running, extra: dict[str, Any], needle: str
) -> None:
    runtime = _runtime(endpoint.url)
    params = {"EndpointName": "echo-async", "InputLocation": "s3://async-in/x.json", **extra}
    with pytest.raises(runtime.exceptions.ValidationError) as info:
        runtime.invoke_endpoint_async(**params)
    assert needle in str(info.value)


def test_client_and_cli_wait_for_the_answer(endpoint: _Running, tmp_path: Path) -> None:
    client = EndpointClient("echo-async", endpoint_url=endpoint.url)
    accepted = client.invoke_async(_put(b'"abc"'), content_type="application/json")
    result = client.wait_async(accepted, timeout=60, poll_interval=0.1)
    assert result.body == b'"ABC"' and result.content_type == "application/json"
    failing = client.invoke_async(_put(b'{"fail": 1}'))
    with pytest.raises(AsyncInvocationFailed, match="Received client error"):
        client.wait_async(failing, timeout=60, poll_interval=0.1)
    # A local file stands for the input location with the local gateway.
    body = tmp_path / "request.json"
    body.write_text('{"text": "from a file"}')
    argv = [sys.executable, "-m", "composer", "invoke", "echo-async", "--endpoint-url"]
    argv += [endpoint.url, "--async", "--file", str(body), "--wait", "--wait-timeout", "60"]
    done = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout == '{"TEXT": "FROM A FILE"}\n'
    assert f"output {OUT}/" in done.stderr
    argv = [sys.executable, "-m", "composer", "invoke", "echo-async", "--endpoint-url"]
    argv += [endpoint.url, "--async", "--data", "{}"]
    done = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 2 and "reads its body from --input-location" in done.stderr


def test_multi_container_endpoints_refuse_async() -> None:
    config = GatewayConfig(
        endpoint_name="serial",
        mode="Serial",
        containers=(
            Upstream("a", "http://127.0.0.1:9"),
            Upstream("b", "http://127.0.0.1:9"),
        ),
    )
    with ThreadedGateway(config) as gateway:
        runtime = _runtime(gateway.url)
        with pytest.raises(runtime.exceptions.ValidationError) as info:
            runtime.invoke_endpoint_async(EndpointName="serial", InputLocation="s3://bkt/x")
    assert "single-container endpoints only" in str(info.value)


def test_async_inference_config_reaches_create_endpoint_config(
    moto: MotoServer, tmp_path: Path
) -> None:
    path = tmp_path / "async.yaml"
    path.write_text(
        f"""
name: echo-async
containers:
  - hostname: echo
    image: 123456789012.dkr.ecr.us-east-1.amazonaws.com/echo:1
async:
  output_path: {OUT}
  failure_path: {FAILED}
  success_topic: arn:aws:sns:us-east-1:123456789012:ok
  error_topic: arn:aws:sns:us-east-1:123456789012:failed
  kms_key_id: alias/async
  max_concurrent_invocations_per_instance: 3
aws:
  region: us-east-1
  role_arn: {ROLE}
"""
    )
    recorder = Recorder()
    clients = recorded_clients(recorder)
    plan = preflight(load_pipeline(path), str(path), "us-east-1")
    deploy(plan, clients, Quiet())
    [sent] = recorder.sent("CreateEndpointConfig")
    assert sent["AsyncInferenceConfig"] == {
        "OutputConfig": {
            "S3OutputPath": OUT,
            "S3FailurePath": FAILED,
            "NotificationConfig": {
                "SuccessTopic": "arn:aws:sns:us-east-1:123456789012:ok",
                "ErrorTopic": "arn:aws:sns:us-east-1:123456789012:failed",
            },
            "KmsKeyId": "alias/async",
        },
        "ClientConfig": {"MaxConcurrentInvocationsPerInstance": 3},
    }
    described = clients.sagemaker.describe_endpoint_config(
        EndpointConfigName=sent["EndpointConfigName"]
    )
    assert described["AsyncInferenceConfig"]["OutputConfig"]["S3OutputPath"] == OUT
    json.dumps(sent)
