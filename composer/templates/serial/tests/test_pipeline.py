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


def invoke(endpoint: Endpoint, body: str, content_type: str) -> dict[str, object]:
    answer = endpoint.client.invoke_endpoint(
        EndpointName=endpoint.name, ContentType=content_type, Body=body
    )
    assert answer["ContentType"] == "application/json"
    result: dict[str, object] = json.loads(answer["Body"].read())
    return result


def test_runs_through_both_containers(endpoint: Endpoint) -> None:
    result = invoke(endpoint, json.dumps({"text": "What a lovely, GREAT day"}), "application/json")
    assert result == {
        "tokens": ["what", "a", "lovely", "great", "day"],
        "score": 2,
        "label": "positive",
    }


def test_reads_plain_text(endpoint: Endpoint) -> None:
    assert invoke(endpoint, "It broke.", "text/plain")["label"] == "negative"


def test_the_first_container_refuses_what_it_cannot_read(endpoint: Endpoint) -> None:
    with pytest.raises(endpoint.client.exceptions.ModelError) as caught:
        invoke(endpoint, "a,b", "text/csv")
    assert caught.value.response["OriginalStatusCode"] == 415
