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


def test_greets(endpoint: Endpoint) -> None:
    answer = endpoint.client.invoke_endpoint(
        EndpointName=endpoint.name,
        ContentType="application/json",
        Body=json.dumps({"name": "Ada"}),
    )
    assert answer["ContentType"] == "application/json"
    assert json.loads(answer["Body"].read()) == {"message": "hello, Ada"}


def test_refuses_other_content_types(endpoint: Endpoint) -> None:
    with pytest.raises(endpoint.client.exceptions.ModelError) as caught:
        endpoint.client.invoke_endpoint(
            EndpointName=endpoint.name, ContentType="text/csv", Body=b"Ada"
        )
    assert caught.value.response["OriginalStatusCode"] == 415
