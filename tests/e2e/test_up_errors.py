"""Every failure an `up` endpoint can give, as the botocore exception SageMaker would raise."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from .conftest import READY_TIMEOUT, Up, faulty_pipeline, processes_under, running_up, start_up

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

LIMIT = 6291456


@pytest.fixture(scope="module")
def faulty(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    containers = {"faulty": {"invocation_timeout": 2}, "echo": {}}
    folder = tmp_path_factory.mktemp("faulty")
    with running_up(faulty_pipeline(folder, "faulty", containers, mode="Direct")) as up:
        yield up


@pytest.fixture(scope="module")
def faulty_chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    folder = tmp_path_factory.mktemp("faulty-chain")
    containers: dict[str, dict[str, Any]] = {"first": {}, "second": {}}
    with running_up(faulty_pipeline(folder, "faulty-chain", containers, mode="Serial")) as up:
        yield up


def call(up: Up, body: Any, **kwargs: Any) -> dict[str, Any]:
    client: Any = up.client()
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    kwargs.setdefault("ContentType", "application/json")
    kwargs.setdefault("EndpointName", up.name)
    return dict(client.invoke_endpoint(Body=data, **kwargs))


def error_of(up: Up, body: Any, **kwargs: Any) -> dict[str, Any]:
    client: Any = up.client()
    with pytest.raises(ClientError) as caught:
        call(up, body, **kwargs)
    err = caught.value.response
    err["__class__"] = type(caught.value).__name__
    assert isinstance(caught.value, client.exceptions.ClientError)
    return dict(err)


def test_unknown_hostname_is_a_validation_error(faulty: Up) -> None:
    err = error_of(faulty, {}, TargetContainerHostname="nope")
    assert err["__class__"] == "ValidationError"
    assert err["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert "nope" in err["Error"]["Message"]


def test_no_hostname_on_direct_is_a_validation_error(faulty: Up) -> None:
    err = error_of(faulty, {})
    assert err["__class__"] == "ValidationError"
    assert "TargetContainerHostname" in err["Error"]["Message"]


def test_hostname_on_serial_is_a_validation_error(faulty_chain: Up) -> None:
    err = error_of(faulty_chain, {}, TargetContainerHostname="first")
    assert err["__class__"] == "ValidationError"


def test_target_model_on_a_single_model_endpoint_is_a_validation_error(faulty_chain: Up) -> None:
    err = error_of(faulty_chain, {}, TargetModel="a.tar.gz")
    assert err["__class__"] == "ValidationError"
    assert "is not a multi-model endpoint" in err["Error"]["Message"]


def test_unknown_endpoint(faulty: Up) -> None:
    err = error_of(faulty, {}, EndpointName="nope", TargetContainerHostname="echo")
    assert err["__class__"] == "ValidationError"
    assert err["Error"]["Message"] == "Endpoint nope of account 000000000000 not found."


def test_container_4xx_is_a_model_error(nlp_direct: Up) -> None:
    err = error_of(nlp_direct, b"a,b\n", ContentType="text/csv", TargetContainerHostname="spacy")
    assert err["__class__"] == "ModelError"
    assert err["ResponseMetadata"]["HTTPStatusCode"] == 424
    assert err["OriginalStatusCode"] == 415
    assert err["Error"]["Message"].startswith("Received client error (415) from spacy with message")
    assert "text/csv" in err["OriginalMessage"]
    assert err["LogStreamArn"].endswith("/spacy")
    assert "spacy.log" in err["Error"]["Message"]


def test_container_5xx_is_a_model_error(faulty: Up) -> None:
    err = error_of(faulty, {"status": 500}, TargetContainerHostname="faulty")
    assert err["__class__"] == "ModelError"
    assert err["OriginalStatusCode"] == 500
    assert err["Error"]["Message"].startswith("Received server error (500) from faulty")
    assert "failed on purpose" in err["OriginalMessage"]
    # the worker keeps serving
    ok = call(faulty, {"hello": 1}, TargetContainerHostname="faulty")
    assert json.loads(ok["Body"].read()) == {"hello": 1}


def test_oversize_body_is_refused(faulty: Up) -> None:
    err = error_of(faulty, b"x" * (LIMIT + 1), TargetContainerHostname="echo")
    assert err["__class__"] == "ValidationError"
    assert str(LIMIT + 1) in err["Error"]["Message"]
    exactly = b'"' + b"x" * (LIMIT - 2) + b'"'  # echoed back at the same size
    ok = call(faulty, exactly, TargetContainerHostname="echo")
    assert ok["ResponseMetadata"]["HTTPStatusCode"] == 200


def test_oversize_intermediate_payload_names_both_containers(faulty_chain: Up) -> None:
    err = error_of(faulty_chain, {"grow": LIMIT + 10})
    assert err["__class__"] == "ModelError"
    message = err["Error"]["Message"]
    assert "first" in message and "second" in message


def test_serial_chain_passes_answers_on(faulty_chain: Up) -> None:
    r = call(faulty_chain, {"a": [1, 2]})
    assert json.loads(r["Body"].read()) == {"a": [1, 2]}


def test_metrics_count_invocations_per_container(faulty: Up) -> None:
    import urllib.request

    call(faulty, {"m": 1}, TargetContainerHostname="echo")
    text = urllib.request.urlopen(f"{faulty.url}/metrics", timeout=5).read().decode()
    wanted = (
        'Invocations_total{container="echo",endpoint="faulty",instance="local-1",'
        'variant="AllTraffic"}'
    )
    assert any(line.startswith(wanted) for line in text.splitlines()), text[:2000]
    assert "ContainerLatency" in text and "OverheadLatency" in text


def test_startup_failure_names_the_container_and_shows_its_log(tmp_path: Path) -> None:
    env = {"FAULTY_FAIL_ON_LOAD": "the model is missing its weights"}
    up = start_up(faulty_pipeline(tmp_path, "broken", {"broken": {"environment": env}}))
    code = up.proc.wait(timeout=READY_TIMEOUT)
    output = "\n".join(up.lines)
    assert code != 0
    assert "container broken exited" in output
    assert "the model is missing its weights" in output
    assert "internal error" not in output
    assert not processes_under(tmp_path / ".composer")


def test_clean_shutdown_leaves_no_process(tmp_path: Path) -> None:
    with running_up(faulty_pipeline(tmp_path, "quick", {"quick": {}})) as up:
        assert processes_under(tmp_path / ".composer"), "serve, nginx and gunicorn are running"
        assert up.stop(signal.SIGTERM) == 0
    time.sleep(0.5)
    assert not processes_under(tmp_path / ".composer")
