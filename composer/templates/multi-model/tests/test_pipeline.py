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


def greet(endpoint: Endpoint, target_model: str) -> dict[str, str]:
    answer = endpoint.client.invoke_endpoint(
        EndpointName=endpoint.name,
        TargetModel=target_model,
        ContentType="application/json",
        Body=json.dumps({"name": "Ada"}),
    )
    result: dict[str, str] = json.loads(answer["Body"].read())
    return result


@pytest.mark.parametrize(
    ("target_model", "message"), [("en.tar.gz", "hello, Ada"), ("fr.tar.gz", "bonjour, Ada")]
)
def test_each_model_answers(endpoint: Endpoint, target_model: str, message: str) -> None:
    assert greet(endpoint, target_model)["message"] == message


def test_a_model_stays_loaded(endpoint: Endpoint) -> None:
    assert greet(endpoint, "fr.tar.gz") == greet(endpoint, "fr.tar.gz")


def test_an_unknown_model_is_refused(endpoint: Endpoint) -> None:
    with pytest.raises(endpoint.client.exceptions.ValidationError):
        greet(endpoint, "xx.tar.gz")
