"""The pipeline's tests: against `sm-compose up`, or against the deployed endpoint when
COMPOSER_TEST_ENDPOINT names it. The `composer_up` fixture comes with sagemaker-composer.

Requests and answers live in S3, reached through boto3's standard chain: the bucket of
pipeline.yaml's `async.output_path` on AWS, or a local stand-in such as moto's server when
AWS_ENDPOINT_URL_S3 points at one (the bucket is then created if missing)."""

import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

import boto3
import pytest

from composer.testing import Endpoint, UpFactory

PIPELINE = Path(__file__).resolve().parents[1] / "pipeline.yaml"


@pytest.fixture(scope="module")
def endpoint(composer_up: UpFactory) -> Endpoint:
    return composer_up(PIPELINE)


@pytest.fixture(scope="module")
def s3(endpoint: Endpoint) -> Any:
    client = boto3.client("s3")
    bucket = bucket_of(endpoint)
    try:
        client.head_bucket(Bucket=bucket)
    except client.exceptions.ClientError:
        if not (os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")):
            pytest.fail(f"bucket {bucket} not found: create it, or change async.output_path")
        client.create_bucket(Bucket=bucket)
    return client


def bucket_of(endpoint: Endpoint) -> str:
    assert endpoint.pipeline.async_inference is not None
    return endpoint.pipeline.async_inference.output_path.removeprefix("s3://").split("/")[0]


def split(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


def wait_for(s3: Any, answer: dict[str, Any], timeout: float = 60) -> tuple[str, bytes]:
    """("output" or "failure", the object's bytes): whichever location is written first."""
    locations = {"output": answer["OutputLocation"], "failure": answer.get("FailureLocation")}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for outcome, uri in locations.items():
            if uri is None:
                continue
            bucket, key = split(uri)
            try:
                return outcome, s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            except s3.exceptions.NoSuchKey:
                pass
        time.sleep(0.5)
    raise AssertionError(f"nothing at {locations} after {timeout} s")


def invoke_async(endpoint: Endpoint, s3: Any, body: bytes, content_type: str) -> dict[str, Any]:
    key = f"requests/{uuid.uuid4()}"
    s3.put_object(Bucket=bucket_of(endpoint), Key=key, Body=body)
    answer: dict[str, Any] = endpoint.client.invoke_endpoint_async(
        EndpointName=endpoint.name,
        InputLocation=f"s3://{bucket_of(endpoint)}/{key}",
        ContentType=content_type,
    )
    return answer


def test_the_answer_is_written_to_the_output_location(endpoint: Endpoint, s3: Any) -> None:
    answer = invoke_async(
        endpoint, s3, json.dumps({"text": "one two three"}).encode(), "application/json"
    )
    assert answer["InferenceId"]
    outcome, body = wait_for(s3, answer)
    assert outcome == "output", body
    assert json.loads(body) == {"words": 3, "characters": 13}


def test_an_error_is_written_to_the_failure_location(endpoint: Endpoint, s3: Any) -> None:
    answer = invoke_async(endpoint, s3, b"a,b", "text/csv")
    outcome, body = wait_for(s3, answer)
    assert outcome == "failure"
    assert b"415" in body, body
