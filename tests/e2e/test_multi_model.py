"""Multi-model containers under `sm-compose up`, driven by an unmodified boto3 client.

The container is tests/integration/fixtures/mme (each model's model.json says what model_fn
does); its answers say which model answered and how often model_fn ran for it.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from composer.client import EndpointClient, InvocationError
from tests.integration.aws_fixtures import MotoServer

from .conftest import REPO, Up, running_up, start_up, write_pipeline

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

FIXTURE = REPO / "tests" / "integration" / "fixtures"


def _archive(path: Path, spec: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = json.dumps(spec).encode()
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo("model.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))


def _models(folder: Path) -> Path:
    models = folder / "models"
    for name in ("alpha", "beta", "gamma"):
        _archive(models / f"{name}.tar.gz", {"name": name, "mb": 1})
    _archive(models / "v2" / "delta.tar.gz", {"name": "delta"})
    _archive(models / "broken.tar.gz", {"name": "broken", "fail": "this model cannot load"})
    _archive(models / "huge.tar.gz", {"name": "huge", "memory_error": True})
    (models / "not-an-archive.tar.gz").write_text("plain text")
    return models


def _models_container(folder: Path, **fields: Any) -> dict[str, Any]:
    """The multi-model test container, over test models freshly written under `folder`."""
    model_data = str(_models(folder))
    container = {"hostname": "models", "build": str(FIXTURE / "mme"), "multi_model": True}
    return {**container, "model_data": model_data, **fields}


@pytest.fixture(scope="module")
def mme(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    folder = tmp_path_factory.mktemp("mme")
    models = _models_container(folder, environment={"COMPOSER_MME_MAX_MODELS": "2"})
    with running_up(write_pipeline(folder, {"name": "mme", "containers": [models]})) as up:
        yield up


@pytest.fixture(scope="module")
def mme_serial(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    folder = tmp_path_factory.mktemp("mme-serial")
    shout = {"hostname": "shout", "build": str(FIXTURE / "echo")}
    spec = {
        "name": "mme-serial",
        "mode": "Serial",
        "containers": [_models_container(folder), shout],
    }
    with running_up(write_pipeline(folder, spec)) as up:
        yield up


def _invoke(up: Up, model: str | None, doc: Any = None, endpoint: str | None = None) -> Any:
    params: dict[str, Any] = {
        "EndpointName": endpoint or up.name,
        "Body": json.dumps(doc if doc is not None else {"x": 1}).encode(),
        "ContentType": "application/json",
    }
    if model is not None:
        params["TargetModel"] = model
    r = up.client().invoke_endpoint(**params)  # type: ignore[attr-defined]
    return json.loads(r["Body"].read())


def _error(up: Up, model: str | None) -> dict[str, Any]:
    client = up.client()
    params: dict[str, Any] = {"EndpointName": up.name, "Body": b"{}"}
    if model is not None:
        params["TargetModel"] = model
    with pytest.raises(client.exceptions.ClientError) as caught:  # type: ignore[attr-defined]
        client.invoke_endpoint(**params)  # type: ignore[attr-defined]
    response: dict[str, Any] = caught.value.response
    return response


def _container_models(up: Up) -> list[str]:
    """What the container itself holds (its own /models), as TargetModels via the log names."""
    import urllib.request

    url = next(
        line.split()[1] for line in up.lines if line.startswith("models ") and "http" in line
    )
    with urllib.request.urlopen(f"{url}/models", timeout=10) as r:
        return sorted(m["modelName"] for m in json.loads(r.read())["models"])


def test_first_use_loads_then_cache_hits(mme: Up) -> None:
    first = _invoke(mme, "alpha.tar.gz", {"n": 1})
    second = _invoke(mme, "alpha.tar.gz", {"n": 2})
    assert first["model"] == second["model"] == "alpha"
    assert first["loads"] == second["loads"] == 1  # model_fn ran once: the second was a hit
    assert second["input"] == {"n": 2}


def test_models_in_subfolders_are_addressed_by_relative_path(mme: Up) -> None:
    assert _invoke(mme, "v2/delta.tar.gz")["model"] == "delta"


def test_least_recently_used_is_evicted_under_a_small_budget(mme: Up) -> None:
    from composer.gateway.multimodel import model_name

    for name in ("alpha", "beta", "gamma"):  # cap of 2: loading gamma evicts alpha
        _invoke(mme, f"{name}.tar.gz")
    held = _container_models(mme)
    assert model_name("alpha.tar.gz") not in held
    assert {model_name("beta.tar.gz"), model_name("gamma.tar.gz")} <= set(held)
    again = _invoke(mme, "alpha.tar.gz")
    assert again["model"] == "alpha" and again["loads"] >= 2  # loaded once more: a miss
    assert "alpha" in again["unloads"]


def test_missing_model_is_a_validation_error(mme: Up) -> None:
    r = _error(mme, "nowhere.tar.gz")
    assert r["Error"]["Code"] == "ValidationError"
    assert "Failed to download model data" in r["Error"]["Message"]
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_target_model_cannot_leave_the_model_folder(mme: Up) -> None:
    r = _error(mme, "../mme/pipeline.yaml")
    assert r["Error"]["Code"] == "ValidationError"
    assert "'..'" in r["Error"]["Message"]


def test_failed_load_is_a_model_error_and_others_keep_working(mme: Up) -> None:
    r = _error(mme, "broken.tar.gz")
    assert r["Error"]["Code"] == "ModelError"
    assert r["OriginalStatusCode"] == 500
    assert "this model cannot load" in r["OriginalMessage"]
    r = _error(mme, "not-an-archive.tar.gz")
    assert r["Error"]["Code"] == "ValidationError"
    assert "extract" in r["Error"]["Message"]
    assert _invoke(mme, "beta.tar.gz")["model"] == "beta"


def test_model_that_cannot_fit_unloads_the_others_then_fails(mme: Up) -> None:
    _invoke(mme, "beta.tar.gz")
    r = _error(mme, "huge.tar.gz")
    assert r["Error"]["Code"] == "ModelError"
    assert r["OriginalStatusCode"] == 507
    assert _container_models(mme) == []  # the gateway unloaded every other model to make room
    assert _invoke(mme, "beta.tar.gz")["model"] == "beta"


def test_target_model_is_required_on_a_multi_model_endpoint(mme: Up) -> None:
    r = _error(mme, None)
    assert r["Error"]["Code"] == "ValidationError"
    assert "missing a target model header" in r["Error"]["Message"]


def test_serial_pipeline_passes_the_models_answer_on(mme_serial: Up) -> None:
    answer = _invoke(mme_serial, "gamma.tar.gz", {"n": 3})
    assert answer["MODEL"] == "GAMMA"  # the echo container upper-cases what it is given
    assert answer["INPUT"] == {"N": 3}


def test_endpoint_client_and_cli_take_a_target_model(mme: Up) -> None:
    client = EndpointClient(mme.name, client=mme.client())  # type: ignore[arg-type]
    result = client.invoke({"n": 5}, target_model="beta.tar.gz")
    assert json.loads(result.body)["model"] == "beta"
    with pytest.raises(InvocationError):
        client.invoke({"n": 5}, target_model="nowhere.tar.gz")
    done = subprocess.run(
        [sys.executable, "-m", "composer", "invoke", mme.name, "--endpoint-url", mme.url,
         "--region", "us-east-1", "--target-model", "gamma.tar.gz", "--data", "{}"],
        capture_output=True, text=True, timeout=60,
        env={"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
             "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["model"] == "gamma"


@pytest.mark.aws
def test_models_come_from_an_s3_prefix(tmp_path: Path, moto: MotoServer) -> None:
    """model_data: s3://...: the gateway downloads TargetModel from under it on first use."""
    import boto3

    s3 = boto3.client("s3")  # the `moto` fixture points it (and `up`) at moto's server
    s3.create_bucket(Bucket="models")
    local = _models(tmp_path)
    for name in ("alpha.tar.gz", "v2/delta.tar.gz"):
        s3.upload_file(str(local / name), "models", f"mme/{name}")
    pipeline = write_pipeline(
        tmp_path,
        f"""
name: mme-s3
containers:
  - hostname: models
    build: {FIXTURE / "mme"}
    multi_model: true
    model_data: s3://models/mme/
""",
    )
    up = start_up(pipeline, env=moto.env())
    try:
        up.wait_for("ready at", 900)
        assert _invoke(up, "alpha.tar.gz")["model"] == "alpha"
        assert _invoke(up, "v2/delta.tar.gz")["model"] == "delta"
        r = _error(up, "beta.tar.gz")  # not uploaded
        assert r["Error"]["Code"] == "ValidationError"
        assert "s3://models/mme/beta.tar.gz" in r["Error"]["Message"]
    finally:
        up.stop()
