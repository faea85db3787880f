"""`sm-compose push`: the NLP example's real images to a local registry and, up to login, to ECR.

Once per engine (the `engine` fixture is parametrized). The images come from `sm-compose build
--engine ENGINE` (the `nlp_images` fixture, tests/conftest.py); an unchanged context is not built
again, so this module's pipelines find them in the engine's own store. ECR is moto's server (the
shared `moto` fixture).
"""

from __future__ import annotations

import base64
from pathlib import Path

import boto3
import pytest

from composer.aws.images import ecr_login
from composer.aws.lockfile import read_lock
from composer.runners.engine import Engine
from tests.e2e.conftest import nlp_pipeline
from tests.engines import cli
from tests.integration.aws_fixtures import MotoServer

pytestmark = [pytest.mark.engine, pytest.mark.slow]

PREFIX = "sagemaker-composer"


def test_push_to_a_registry_records_digests_that_deploy_uses(
    nlp_images: Path, engine: Engine, registry: str, tmp_path: Path
) -> None:
    pipeline = nlp_pipeline(tmp_path, "Direct")  # same contexts, so the same images
    to = ["--registry", f"{registry}/team", "--no-tls-verify"]
    proc = cli("push", str(pipeline), "--engine", engine.name, *to)

    assert proc.returncode == 0, proc.stderr
    lock = read_lock(tmp_path / "pipeline.lock.json")
    assert set(lock) == {"spacy", "textblob"}
    for hostname, uri in lock.items():
        assert uri.startswith(f"{registry}/team/{PREFIX}-{hostname}@sha256:")
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


def test_ecr_repositories_and_token_against_moto(moto: MotoServer) -> None:
    moto.reset()  # the push tests of this module create the same repositories
    ecr: object = boto3.client("ecr")  # the `moto` fixture points it at moto's server
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
    env = engine.credentials_env(tmp_path / "credentials")
    proc = cli("push", str(pipeline), "--engine", engine.name, env=env)
    ecr: object = boto3.client("ecr")
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
