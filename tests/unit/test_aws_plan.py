"""Deploy's checks before any AWS call, the lock file, deterministic packing, dry-run, export."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from composer.aws import autoscaling
from composer.aws.cloudformation import dumps, template
from composer.aws.lockfile import lock_path, locked_builds, read_lock, update_lock, write_lock
from composer.aws.packing import pack_folder
from composer.aws.plan import dry_run_document, preflight
from composer.cli import cli
from composer.errors import UsageError
from composer.redaction import REDACTED, redact
from composer.render.builds import BuiltFrom, built_from
from composer.spec import load_pipeline
from tests.aws_pipelines import ROLE, SPACY, TEXTBLOB, write_pipeline

DIGEST = "sha256:" + "ab" * 32
# Endpoints that refuse connections: any AWS call would fail the command.
DEAD_AWS = {
    "AWS_ENDPOINT_URL_SAGEMAKER": "http://127.0.0.1:9",
    "AWS_ENDPOINT_URL_S3": "http://127.0.0.1:9",
    "AWS_ENDPOINT_URL_STS": "http://127.0.0.1:9",
    "AWS_ENDPOINT_URL_APPLICATION_AUTO_SCALING": "http://127.0.0.1:9",
    "AWS_ACCESS_KEY_ID": "AKIAABCDEFGHIJKLMNOP",
    "AWS_SECRET_ACCESS_KEY": "not-a-real-secret",
    "AWS_MAX_ATTEMPTS": "1",
}


def run(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args), env=DEAD_AWS)


# --- lock file --------------------------------------------------------------------------------


def test_lock_path_sits_beside_the_pipeline(tmp_path: Path) -> None:
    assert lock_path(tmp_path / "nlp-direct.yaml") == tmp_path / "nlp-direct.lock.json"
    assert lock_path(tmp_path / "p.yml") == tmp_path / "p.lock.json"


def test_lock_round_trip_and_merge(tmp_path: Path) -> None:
    path = tmp_path / "p.lock.json"
    assert read_lock(path) == {}
    write_lock(path, {"b": f"r.example/b@{DIGEST}"})
    merged = update_lock(path, {"a": f"r.example/a@{DIGEST}"})
    assert merged == read_lock(path) == {"a": f"r.example/a@{DIGEST}", "b": f"r.example/b@{DIGEST}"}
    assert list(json.loads(path.read_text())["images"]) == ["a", "b"]


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("{", "not JSON"),
        ('{"x": 1}', 'no "images"'),
        ('{"images": {"a": "repo:latest"}}', "@sha256:DIGEST"),
    ],
)
def test_bad_lock_files_are_usage_errors(tmp_path: Path, text: str, needle: str) -> None:
    path = tmp_path / "p.lock.json"
    path.write_text(text)
    with pytest.raises(UsageError, match=needle):
        read_lock(path)


# --- packing ----------------------------------------------------------------------------------


def test_pack_folder_is_deterministic_and_plain(tmp_path: Path) -> None:
    folder = tmp_path / "model"
    (folder / "sub").mkdir(parents=True)
    (folder / "b.txt").write_text("b")
    (folder / "sub" / "a.bin").write_bytes(b"\0" * 10)
    first = pack_folder(folder, tmp_path / "one.tar.gz").read_bytes()
    (folder / "b.txt").touch()  # a new mtime must not change the bytes
    second = pack_folder(folder, tmp_path / "two.tar.gz").read_bytes()
    assert first == second
    with tarfile.open(fileobj=io.BytesIO(first)) as tar:
        members = tar.getmembers()
    assert [m.name for m in members] == ["b.txt", "sub", "sub/a.bin"]
    assert all(m.mtime == 0 and m.uid == 0 and m.gid == 0 for m in members)


def test_pack_folder_refuses_links(tmp_path: Path) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "real").write_text("x")
    (folder / "link").symlink_to(folder / "real")
    with pytest.raises(UsageError, match="symbolic link"):
        pack_folder(folder, tmp_path / "out.tar.gz")


# --- fail fast (exit 2, no AWS call) ----------------------------------------------------------


def test_missing_role_exits_2(tmp_path: Path) -> None:
    path = write_pipeline(tmp_path, role=None)
    result = run("deploy", str(path))
    assert result.exit_code == 2, result.output
    assert "aws.role_arn: missing" in result.output


def test_malformed_role_exits_2(tmp_path: Path) -> None:
    path = write_pipeline(tmp_path, role="arn:aws:iam::12:role/x")
    result = run("deploy", str(path))
    assert result.exit_code == 2
    assert "12-digit account" in result.output


def test_build_container_without_pushed_image_points_at_push(tmp_path: Path) -> None:
    path = write_pipeline(tmp_path, textblob_build=True)
    result = run("deploy", str(path))
    assert result.exit_code == 2
    assert f"sm-compose push {path}" in result.output
    assert "textblob" in result.output


def test_build_container_uses_the_locked_image(tmp_path: Path) -> None:
    path = write_pipeline(tmp_path, textblob_build=True)
    locked = f"{TEXTBLOB.split(':')[0]}@{DIGEST}"
    write_lock(lock_path(path), {"textblob": locked})
    plan = preflight(load_pipeline(path), str(path), "us-east-1")
    assert plan.images == {"spacy": SPACY, "textblob": locked}
    model = plan.requests("bucket").model
    assert [c["Image"] for c in model["Containers"]] == [SPACY, locked]


def test_locked_builds_map_each_pinned_uri_back_to_its_build_folder(tmp_path: Path) -> None:
    path = write_pipeline(tmp_path, textblob_build=True)
    assert locked_builds(load_pipeline(path)) == {}  # no lock file yet
    locked = f"{TEXTBLOB.split(':')[0]}@{DIGEST}"
    write_lock(lock_path(path), {"textblob": locked, "spacy": f"r.example/s@{DIGEST}"})
    found = locked_builds(load_pipeline(path))
    assert found == {locked: BuiltFrom(str(tmp_path / "textblob"), str(path), "textblob")}
    # The local SageMaker takes what the lock file says over this machine's record.
    assert built_from(locked) is None and built_from(locked, found) == found[locked]


def test_name_too_long_with_hash_exits_2(tmp_path: Path) -> None:
    path = write_pipeline(tmp_path, name="n" * 60)
    result = run("deploy", str(path), "--dry-run")
    assert result.exit_code == 2
    assert "at most 54 characters" in result.output


def test_no_region_is_a_usage_error(tmp_path: Path) -> None:
    pipeline = load_pipeline(write_pipeline(tmp_path))
    with pytest.raises(UsageError, match="no AWS region"):
        preflight(pipeline, "p.yaml", None)


# --- dry run ----------------------------------------------------------------------------------


def test_dry_run_prints_requests_and_calls_nothing(tmp_path: Path) -> None:
    path = write_pipeline(tmp_path, mode="Serial", autoscaling=True)
    result = run("deploy", str(path), "--dry-run")  # every AWS endpoint refuses connections
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    ops = [c["operation"] for c in document["calls"]]
    assert ops == [
        "GetCallerIdentity",
        "CreateBucket",
        "PutObject",
        "CreateModel",
        "CreateEndpointConfig",
        "CreateEndpoint",
        "RegisterScalableTarget",
        "PutScalingPolicy",
    ]
    assert "000000000000" in document["placeholders"]
    model = document["calls"][3]["params"]
    assert model["InferenceExecutionConfig"] == {"Mode": "Serial"}
    assert model["ExecutionRoleArn"] == ROLE
    assert model["Containers"][0]["ModelDataUrl"].startswith(
        "s3://sagemaker-us-east-1-000000000000/sagemaker-composer/nlp-serial/spacy/"
    )
    policy = document["calls"][-1]["params"]
    assert policy["ResourceId"] == "endpoint/nlp-serial/variant/AllTraffic"
    assert policy["TargetTrackingScalingPolicyConfiguration"]["PredefinedMetricSpecification"] == {
        "PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"
    }
    assert DEAD_AWS["AWS_ACCESS_KEY_ID"] not in result.output


def test_dry_run_matches_what_deploy_renders(tmp_path: Path) -> None:
    path = write_pipeline(tmp_path, bucket="my-bucket")
    plan = preflight(load_pipeline(path), str(path), "us-east-1")
    document = dry_run_document(plan)
    sent = {c["operation"]: c["params"] for c in document["calls"]}
    requests = plan.requests("my-bucket")
    assert sent["CreateModel"] == requests.model
    assert sent["CreateEndpointConfig"] == requests.endpoint_config
    assert "GetCallerIdentity" not in sent  # an explicit bucket needs no account id


def test_redact_hides_secret_values_and_access_keys() -> None:
    document = {
        "Environment": {"API_TOKEN": "abc", "DB_PASSWORD": "pw", "MODE": "fast"},
        "Note": "key AKIAABCDEFGHIJKLMNOP here",
    }
    assert redact(document) == {
        "Environment": {"API_TOKEN": REDACTED, "DB_PASSWORD": REDACTED, "MODE": "fast"},
        "Note": f"key {REDACTED} here",
    }


def test_autoscaling_requests_match_the_spec(tmp_path: Path) -> None:
    pipeline = load_pipeline(write_pipeline(tmp_path, autoscaling=True))
    assert autoscaling.register_scalable_target_request(pipeline) == {
        "ServiceNamespace": "sagemaker",
        "ResourceId": "endpoint/nlp-direct/variant/AllTraffic",
        "ScalableDimension": "sagemaker:variant:DesiredInstanceCount",
        "MinCapacity": 1,
        "MaxCapacity": 4,
    }
    without = load_pipeline(write_pipeline(tmp_path / "plain"))
    assert autoscaling.put_scaling_policy_request(without) is None


# --- export -----------------------------------------------------------------------------------


def _lint(text: str) -> list[str]:
    from cfnlint.api import lint  # type: ignore[import-untyped]

    return [str(m) for m in lint(text, regions=["us-east-1"])]


@pytest.mark.parametrize("mode", ["Direct", "Serial"])
@pytest.mark.parametrize("scaled", [False, True])
def test_exported_templates_pass_cfn_lint(tmp_path: Path, mode: str, scaled: bool) -> None:
    path = write_pipeline(tmp_path, mode=mode, autoscaling=scaled)
    result = run("export", str(path), "--format", "cloudformation")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    resources = document["Resources"]
    model = resources["Model"]["Properties"]
    assert model["InferenceExecutionConfig"] == {"Mode": mode}
    assert [c["ContainerHostname"] for c in model["Containers"]] == ["spacy", "textblob"]
    kinds = sorted(r["Type"] for r in resources.values())
    expected = [
        "AWS::SageMaker::Endpoint",
        "AWS::SageMaker::EndpointConfig",
        "AWS::SageMaker::Model",
    ]
    if scaled:
        expected = [
            "AWS::ApplicationAutoScaling::ScalableTarget",
            "AWS::ApplicationAutoScaling::ScalingPolicy",
            *expected,
        ]
    assert kinds == expected
    assert _lint(result.stdout) == []


def test_exported_template_file_passes_cfn_lint_cli(tmp_path: Path) -> None:
    import subprocess
    import sys

    path = write_pipeline(tmp_path, mode="Serial", autoscaling=True)
    out = tmp_path / "stack.json"
    result = run("export", str(path), "-o", str(out))
    assert result.exit_code == 0, result.output
    lint = Path(sys.executable).with_name("cfn-lint")
    done = subprocess.run([str(lint), str(out)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_export_keeps_the_rendered_documents(tmp_path: Path) -> None:
    path = write_pipeline(tmp_path, bucket="my-bucket")
    plan = preflight(load_pipeline(path), str(path), "us-east-1")
    document = json.loads(dumps(template(plan)))
    model = document["Resources"]["Model"]["Properties"]
    requests = plan.requests("my-bucket")
    assert model["Containers"] == requests.model["Containers"]
    assert model["ModelName"] == requests.model_name
    assert model["ExecutionRoleArn"] == {"Ref": "ExecutionRoleArn"}
