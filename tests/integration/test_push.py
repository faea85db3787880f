"""`sm-compose push`: the NLP example's real images to a local registry and, up to login, to ECR.

Once per engine (the `engine` fixture is parametrized). The images come from `sm-compose build
--engine ENGINE`; an unchanged context is not built again, so every module that needs them shares
one build per engine and session through the engine's own store.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from composer.aws.images import ecr_login
from composer.aws.lockfile import read_lock
from composer.runners.engine import Engine
from tests.e2e.conftest import nlp_pipeline
from tests.integration.aws_fixtures import MotoServer, start_moto_server
from tests.integration.test_engine import BASE_IMAGE, _registry
from tests.integration.test_engine import engine as engine  # the session fixture

pytestmark = [pytest.mark.engine, pytest.mark.slow]

#: Machines without Docker Hub build FROM the debootstrap image that scripts/setup-*.sh make.
ENV = {"COMPOSER_BASE_IMAGE": BASE_IMAGE}
PREFIX = "sagemaker-composer"


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`sm-compose ARGS` as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "composer", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **ENV, **(env or {})},
        timeout=1800,
    )


@pytest.fixture(scope="session")
def nlp_images(engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """nlp-direct written into a private folder, its images built (or found) once per session."""
    pipeline = nlp_pipeline(tmp_path_factory.mktemp("images"), "Direct")
    proc = cli("build", str(pipeline), "--engine", engine.name)
    assert proc.returncode == 0, proc.stderr
    print(f"\n[engine] {engine.name}: {proc.stdout.strip()}")
    return pipeline


def test_push_to_a_registry_records_digests_that_deploy_uses(
    nlp_images: Path, engine: Engine, tmp_path: Path
) -> None:
    pipeline = nlp_pipeline(tmp_path, "Direct")  # same contexts, so the same images
    with _registry(tmp_path) as address:
        registry = ["--registry", f"{address}/team", "--no-tls-verify"]
        proc = cli("push", str(pipeline), "--engine", engine.name, *registry)

        assert proc.returncode == 0, proc.stderr
        lock = read_lock(tmp_path / "pipeline.lock.json")
        assert set(lock) == {"spacy", "textblob"}
        for hostname, uri in lock.items():
            assert uri.startswith(f"{address}/team/{PREFIX}-{hostname}@sha256:")
            assert f"{hostname}: {uri}" in proc.stdout
            local = engine.pull(uri, tls_verify=False)  # pulled back by digest
            assert engine.inspect_labels(uri) == engine.inspect_labels(local)
            engine.remove_image(uri)  # the built tag keeps the layers; this name goes
    pipeline.write_text(
        pipeline.read_text()
        + "aws:\n  region: us-east-1\n  role_arn: arn:aws:iam::123456789012:role/SageMaker\n"
    )
    dry = cli("deploy", str(pipeline), "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert lock["spacy"] in dry.stdout and lock["textblob"] in dry.stdout


def test_push_without_any_build_container_is_refused(tmp_path: Path) -> None:
    pipeline = tmp_path / "pipeline.yaml"
    pipeline.write_text(
        "name: prebuilt\nmode: Direct\ncontainers:\n"
        "  - hostname: a\n    image: registry.example/a:1\n"
        "  - hostname: b\n    image: registry.example/b:1\n"
    )
    proc = cli("push", str(pipeline), "--registry", "127.0.0.1:1/team")
    assert proc.returncode != 0
    assert "no build: containers, so there is nothing to push" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.fixture
def moto() -> Iterator[MotoServer]:
    yield from start_moto_server()


def _ecr(server: MotoServer) -> object:
    return boto3.client(
        "ecr",
        endpoint_url=server.url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def test_ecr_repositories_and_token_against_moto(moto: MotoServer) -> None:
    ecr: object = _ecr(moto)
    ecr.create_repository(repositoryName=f"{PREFIX}-spacy")  # type: ignore[attr-defined]
    login = ecr_login(ecr, [f"{PREFIX}-spacy", f"{PREFIX}-textblob"])  # one exists already
    repos = ecr.describe_repositories()["repositories"]  # type: ignore[attr-defined]
    assert {f"{PREFIX}-spacy", f"{PREFIX}-textblob"} <= {r["repositoryName"] for r in repos}
    assert login.registry == "123456789012.dkr.ecr.us-east-1.amazonaws.com"
    assert login.username == "AWS" and login.password
    assert login.password not in repr(login)


def test_push_to_ecr_on_moto_creates_repositories_then_logs_in(
    nlp_images: Path, engine: Engine, moto: MotoServer, tmp_path: Path
) -> None:
    """Everything up to the engine's login, which moto's made-up registry host cannot answer."""
    pipeline = nlp_pipeline(tmp_path, "Direct")
    pipeline.write_text(pipeline.read_text() + "aws:\n  region: us-east-1\n")
    env = {
        **moto.env(),
        "AWS_ENDPOINT_URL_ECR": moto.url,
        **engine.credentials_env(tmp_path / "credentials"),
    }
    proc = cli("push", str(pipeline), "--engine", engine.name, env=env)
    ecr: object = _ecr(moto)
    repos = ecr.describe_repositories()["repositories"]  # type: ignore[attr-defined]
    assert {r["repositoryName"] for r in repos} == {f"{PREFIX}-spacy", f"{PREFIX}-textblob"}
    token = ecr.get_authorization_token()["authorizationData"][0]["authorizationToken"]  # type: ignore[attr-defined]
    password = base64.b64decode(token).decode().partition(":")[2]
    assert proc.returncode == 1, proc.stderr
    assert f"{engine.name} login failed" in proc.stderr
    assert "123456789012.dkr.ecr.us-east-1.amazonaws.com" in proc.stderr
    assert password not in proc.stderr + proc.stdout
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "pipeline.lock.json").exists(), "nothing pushed, nothing recorded"
