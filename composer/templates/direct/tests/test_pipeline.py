"""The pipeline's tests: against `sm-compose up`, or against the deployed endpoint when
COMPOSER_TEST_ENDPOINT names it. The `composer_up` fixture comes with sagemaker-composer."""

import json
from pathlib import Path

import pytest

from composer.testing import Endpoint, UpFactory

PIPELINE = Path(__file__).resolve().parents[1] / "pipeline.yaml"


@pytest.fixture(scope="module")
def endpoint(composer_up: UpFactory) -> Endpoint:
    return composer_up(PIPELINE)


def test_greeter_greets(endpoint: Endpoint) -> None:
    answer = endpoint.client.invoke_endpoint(
        EndpointName=endpoint.name,
        TargetContainerHostname="greeter",
        ContentType="application/json",
        Body=json.dumps({"name": "Ada"}),
    )
    assert json.loads(answer["Body"].read()) == {"message": "hello, Ada"}


def test_counter_counts(endpoint: Endpoint) -> None:
    answer = endpoint.client.invoke_endpoint(
        EndpointName=endpoint.name,
        TargetContainerHostname="counter",
        ContentType="text/plain",
        Body="one two three",
    )
    assert json.loads(answer["Body"].read()) == {"words": 3, "characters": 13}


def test_a_direct_endpoint_needs_a_hostname(endpoint: Endpoint) -> None:
    with pytest.raises(endpoint.client.exceptions.ValidationError):
        endpoint.client.invoke_endpoint(
            EndpointName=endpoint.name, ContentType="application/json", Body=b"{}"
        )
