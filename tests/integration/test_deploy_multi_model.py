"""Deploy of a multi-model container against moto (in process): the archives of its folder go
under one S3 prefix by their relative paths, and CreateModel gets `Mode: MultiModel` with that
prefix. What the clients put on the wire is recorded, as in test_deploy.py."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from composer.aws.deploy import DeployError, deploy
from composer.aws.report import Quiet
from composer.cli import cli
from tests.aws_pipelines import REGION, ROLE, SPACY, TEXTBLOB, plan_for
from tests.integration.aws_fixtures import Recorder, recorded_clients

PREFIX = "sagemaker-composer/nlp-mm/spacy/models/"


def _archive(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = text.encode()
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo("model.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))


def _project(folder: Path, *, model_data: str = "models", bucket: str | None = None) -> Path:
    _archive(folder / "models" / "en-rules.tar.gz", '{"lang": "en"}')
    _archive(folder / "models" / "v2" / "de-rules.tar.gz", '{"lang": "de"}')
    (folder / "models" / "README.txt").write_text("not an archive: not uploaded")
    lines = [
        "name: nlp-mm",
        "containers:",
        "  - hostname: spacy",
        f"    image: {SPACY}",
        "    multi_model: true",
        f"    model_data: {model_data}",
        "  - hostname: textblob",
        f"    image: {TEXTBLOB}",
        "aws:",
        f"  region: {REGION}",
        f"  role_arn: {ROLE}",
    ]
    if bucket is not None:
        lines.append(f"  s3_bucket: {bucket}")
    path = folder / "nlp-mm.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_folder_archives_go_under_one_prefix_and_model_is_multi_model(
    aws: None, tmp_path: Path
) -> None:
    recorder = Recorder()
    clients = recorded_clients(recorder)
    outcome = deploy(plan_for(_project(tmp_path)), clients, Quiet())
    assert (outcome.action, outcome.status) == ("created", "InService")

    bucket = "sagemaker-us-east-1-123456789012"
    assert sorted(outcome.uploaded) == [
        f"s3://{bucket}/{PREFIX}en-rules.tar.gz",
        f"s3://{bucket}/{PREFIX}v2/de-rules.tar.gz",
    ]
    listed = clients.s3.list_objects_v2(Bucket=bucket, Prefix=PREFIX)
    assert sorted(o["Key"] for o in listed["Contents"]) == [
        f"{PREFIX}en-rules.tar.gz",
        f"{PREFIX}v2/de-rules.tar.gz",
    ]
    body = clients.s3.get_object(Bucket=bucket, Key=f"{PREFIX}v2/de-rules.tar.gz")["Body"].read()
    assert body == (tmp_path / "models" / "v2" / "de-rules.tar.gz").read_bytes()

    (model,) = recorder.sent("CreateModel")
    spacy, textblob = model["Containers"]
    assert spacy["Mode"] == "MultiModel"
    assert spacy["ModelDataUrl"] == f"s3://{bucket}/{PREFIX}"
    assert spacy["Environment"] == {"SAGEMAKER_MULTI_MODEL": "true"}
    assert "Mode" not in textblob and "ModelDataUrl" not in textblob
    assert model["InferenceExecutionConfig"] == {"Mode": "Serial"}


def test_an_added_archive_is_uploaded_alone_and_the_model_stays(aws: None, tmp_path: Path) -> None:
    """SageMaker's way to add a model: upload it under the prefix; no new model or endpoint."""
    recorder = Recorder()
    clients = recorded_clients(recorder)
    path = _project(tmp_path, bucket="my-models")
    clients.s3.create_bucket(Bucket="my-models")
    first = deploy(plan_for(path), clients, Quiet())
    _archive(tmp_path / "models" / "fr-rules.tar.gz", '{"lang": "fr"}')
    recorder.clear()
    second = deploy(plan_for(path), clients, Quiet())
    assert second.uploaded == [f"s3://my-models/{PREFIX}fr-rules.tar.gz"]
    assert sorted(second.skipped_uploads) == sorted(first.uploaded)
    assert second.action == "unchanged"
    assert "CreateModel" not in recorder.ops() and "UpdateEndpoint" not in recorder.ops()
    assert recorder.ops("s3").count("PutObject") == 1


def test_a_changed_archive_under_the_same_name_is_refused_before_any_upload(
    aws: None, tmp_path: Path
) -> None:
    clients = recorded_clients(Recorder())
    path = _project(tmp_path, bucket="my-models")
    clients.s3.create_bucket(Bucket="my-models")
    deploy(plan_for(path), clients, Quiet())
    _archive(tmp_path / "models" / "en-rules.tar.gz", '{"lang": "en", "v": 2}')
    _archive(tmp_path / "models" / "it-rules.tar.gz", '{"lang": "it"}')
    with pytest.raises(DeployError) as caught:
        deploy(plan_for(path), clients, Quiet())
    message = str(caught.value)
    assert "TargetModel 'en-rules.tar.gz'" in message
    assert "new file name" in message and "Nothing was uploaded" in message
    keys = clients.s3.list_objects_v2(Bucket="my-models")["Contents"]
    assert f"{PREFIX}it-rules.tar.gz" not in [k["Key"] for k in keys]


def test_an_s3_prefix_is_used_as_is_and_nothing_is_uploaded(aws: None, tmp_path: Path) -> None:
    recorder = Recorder()
    clients = recorded_clients(recorder)
    path = _project(tmp_path, model_data="s3://team-models/spacy")
    outcome = deploy(plan_for(path), clients, Quiet())
    assert outcome.uploaded == [] and "PutObject" not in recorder.ops()
    assert "CreateBucket" not in recorder.ops()
    (model,) = recorder.sent("CreateModel")
    assert model["Containers"][0]["ModelDataUrl"] == "s3://team-models/spacy/"
    assert model["Containers"][0]["Mode"] == "MultiModel"


def test_dry_run_shows_each_archive_and_the_prefix(tmp_path: Path) -> None:
    path = _project(tmp_path, bucket="my-models")
    dead = {
        "AWS_ENDPOINT_URL_S3": "http://127.0.0.1:9",
        "AWS_ENDPOINT_URL_SAGEMAKER": "http://127.0.0.1:9",
    }
    result = CliRunner().invoke(cli, ["deploy", str(path), "--dry-run"], env=dead)
    assert result.exit_code == 0, result.output
    calls = json.loads(result.stdout)["calls"]
    puts = [c for c in calls if c["operation"] == "PutObject"]
    assert [c["params"]["Key"] for c in puts] == [
        f"{PREFIX}en-rules.tar.gz",
        f"{PREFIX}v2/de-rules.tar.gz",
    ]
    assert "never overwritten" in puts[0]["when"]
    (model,) = [c["params"] for c in calls if c["operation"] == "CreateModel"]
    assert model["Containers"][0]["Mode"] == "MultiModel"
    assert model["Containers"][0]["ModelDataUrl"] == f"s3://my-models/{PREFIX}"


def test_cloudformation_export_has_the_multi_model_container_and_passes_cfn_lint(
    tmp_path: Path,
) -> None:
    from cfnlint.api import lint  # type: ignore[import-untyped]

    result = CliRunner().invoke(
        cli, ["export", str(_project(tmp_path)), "--format", "cloudformation"]
    )
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    spacy = document["Resources"]["Model"]["Properties"]["Containers"][0]
    assert spacy["Mode"] == "MultiModel"
    assert spacy["ModelDataUrl"] == {
        "Fn::Sub": f"s3://sagemaker-${{AWS::Region}}-${{AWS::AccountId}}/{PREFIX}"
    }
    assert f"/{PREFIX}" in document["Description"]
    assert [str(m) for m in lint(result.stdout, regions=[REGION])] == []
