"""The NLP examples as real images: built with Podman, served as SageMaker runs them, pushed."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from composer.aws.images import ecr_login
from composer.aws.lockfile import read_lock
from composer.render.dockerfile import BIND_TO_PORT_LABEL
from composer.runners.engine import Engine
from tests.integration.aws_fixtures import MotoServer, start_moto_server
from tests.integration.test_engine import BASE_IMAGE, _registry
from tests.integration.test_engine import engine as engine  # the session fixture

from .conftest import READY_TIMEOUT, Up, nlp_pipeline, start_up

pytestmark = [pytest.mark.engine, pytest.mark.slow, pytest.mark.e2e]

REPO = Path(__file__).resolve().parents[2]
APPLE = "Apple is looking at buying U.K. startup for $1 billion"
ENV = {"COMPOSER_BASE_IMAGE": BASE_IMAGE}


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "composer", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **ENV, **(env or {})},
        timeout=1800,
    )


@pytest.fixture(scope="module")
def built(engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """nlp-direct written into a private folder, its images built once for the module."""
    folder = tmp_path_factory.mktemp("images")
    pipeline = nlp_pipeline(folder, "Direct")
    proc = cli("build", str(pipeline), "--engine", "podman")
    assert proc.returncode == 0, proc.stderr
    return pipeline


def test_images_carry_the_sagemaker_label_and_are_not_rebuilt(built: Path, engine: Engine) -> None:
    again = cli("build", str(built), "--engine", "podman")
    assert again.returncode == 0, again.stderr
    lines = again.stdout.strip().splitlines()
    assert len(lines) == 2 and all("(up to date; SageMaker labels present)" in x for x in lines)
    for line in lines:
        ref = line.split()[1]
        assert engine.inspect_labels(ref)[BIND_TO_PORT_LABEL] == "true"


def _invoke(up: Up, body: dict[str, Any], **kwargs: Any) -> Any:
    client: Any = up.client()
    r = client.invoke_endpoint(
        EndpointName=up.name,
        Body=json.dumps(body).encode(),
        ContentType="application/json",
        **kwargs,
    )
    return json.loads(r["Body"].read())


@contextlib.contextmanager
def _up_engine(pipeline: Path) -> Iterator[Up]:
    up = start_up(pipeline, "--engine", "podman", env=ENV)
    try:
        up.wait_for("ready at", READY_TIMEOUT)
        yield up
    finally:
        assert up.stop() == 0


def _running(engine: Engine, endpoint: str) -> list[str]:
    out = subprocess.run(
        [engine.binary, "ps", "-a", "--filter", f"label=sm-compose.endpoint={endpoint}", "-q"],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.split()


def test_up_with_podman_serves_direct(built: Path, engine: Engine) -> None:
    with _up_engine(built) as up:
        doc = _invoke(up, {"text": APPLE}, TargetContainerHostname="spacy")
        entities = {(e["text"], e["label"]) for e in doc["entities"]}
        assert {("Apple", "ORG"), ("U.K.", "GPE"), ("$1 billion", "MONEY")} <= entities
        score = _invoke(up, {"text": "What a lovely day"}, TargetContainerHostname="textblob")
        assert score["polarity"] > 0
        assert len(_running(engine, "nlp-direct")) == 2
    assert _running(engine, "nlp-direct") == [], "containers are removed on exit"


def test_up_with_podman_serves_serial(built: Path, tmp_path: Path) -> None:
    with _up_engine(nlp_pipeline(tmp_path, "Serial")) as up:
        doc = _invoke(up, {"text": "I love this phone. The battery is terrible."})
        per = doc["sentiment"]["sentences"]
        assert [s["text"] for s in per] == ["I love this phone.", "The battery is terrible."]
        assert per[0]["polarity"] > 0 > per[1]["polarity"]


def test_push_records_digests_that_deploy_uses(built: Path, engine: Engine, tmp_path: Path) -> None:
    with _registry(tmp_path) as address:
        proc = cli("push", str(built), "--registry", f"{address}/team", "--no-tls-verify")
        assert proc.returncode == 0, proc.stderr
        lock = read_lock(built.with_name("pipeline.lock.json"))
        assert set(lock) == {"spacy", "textblob"}
        for uri in lock.values():
            assert uri.startswith(f"{address}/team/sagemaker-composer-") and "@sha256:" in uri
            engine.pull(uri, tls_verify=False)
    spec = built.read_text() + (
        "aws:\n  region: us-east-1\n  role_arn: arn:aws:iam::123456789012:role/SageMaker\n"
    )
    built.write_text(spec)
    try:
        dry = cli("deploy", str(built), "--dry-run")
    finally:
        built.write_text(spec.split("aws:\n")[0])
    assert dry.returncode == 0, dry.stderr
    assert lock["spacy"] in dry.stdout and lock["textblob"] in dry.stdout


@pytest.fixture
def moto() -> Iterator[MotoServer]:
    yield from start_moto_server()


def test_ecr_repositories_and_login_against_moto(moto: MotoServer) -> None:
    server = moto
    ecr = boto3.client(
        "ecr",
        endpoint_url=server.url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    ecr.create_repository(repositoryName="sagemaker-composer-spacy")  # one exists already
    login = ecr_login(ecr, ["sagemaker-composer-spacy", "sagemaker-composer-textblob"])
    names = {r["repositoryName"] for r in ecr.describe_repositories()["repositories"]}
    assert {"sagemaker-composer-spacy", "sagemaker-composer-textblob"} <= names
    assert login.registry.endswith(".dkr.ecr.us-east-1.amazonaws.com")
    assert login.username == "AWS" and login.password
    assert login.password not in repr(login)
