"""Planted AWS credentials never reach what sm-compose prints: dry runs, errors, messages.

The credentials are planted twice: in the environment of the command (as the AWS chain gives
them) and in a container's `environment:` (as a careless pipeline would). Each command runs as a
user runs it, in its own process; `up` and its logs are checked in tests/e2e/test_exposure.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from composer.redaction import REDACTED, redact, redact_text

#: In the command's environment: the AWS chain's credentials.
PLANTED_ENV = {
    "AWS_ACCESS_KEY_ID": "AKIAPLANTEDKEY7Q2X9Z",
    "AWS_SECRET_ACCESS_KEY": "plantedEnvSecret/0123456789+abcdefGHIJKLmn",
    "AWS_SESSION_TOKEN": "plantedEnvSessionToken//AbCdEf0123456789==",
}
#: In the pipeline: a container's environment.
PLANTED_SPEC = {
    "AWS_ACCESS_KEY_ID": "AKIASPECPLANTED4K7WQ",
    "AWS_SECRET_ACCESS_KEY": "plantedSpecSecret/9876543210+zyxwvuTSRQPO",
    "AWS_SESSION_TOKEN": "plantedSpecSessionToken//ZyXwVu9876543210==",
}
PLANTED = [*PLANTED_ENV.values(), *PLANTED_SPEC.values()]
#: Endpoints that refuse connections: any AWS call fails at once, on loopback.
DEAD_AWS = {
    f"AWS_ENDPOINT_URL_{service}": "http://127.0.0.1:9"
    for service in ("SAGEMAKER", "S3", "STS", "APPLICATION_AUTO_SCALING", "SAGEMAKER_RUNTIME")
}
ROLE = "arn:aws:iam::123456789012:role/SageMakerExecutionRole"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/sagemaker-composer-{}:1"


def pipeline(folder: Path, *, region: str = "us-east-1", role: str = ROLE) -> Path:
    env = "".join(f"      {k}: {v}\n" for k, v in PLANTED_SPEC.items())
    text = (
        "name: secrets\n"
        "containers:\n"
        f"  - hostname: ner\n    image: {IMAGE.format('ner')}\n    environment:\n{env}"
        "aws:\n"
        f"  region: {region}\n"
        f"  role_arn: {role}\n"
    )
    path = folder / "pipeline.yaml"
    path.write_text(text)
    return path


def sm_compose(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **PLANTED_ENV, **DEAD_AWS, "AWS_MAX_ATTEMPTS": "1", "NO_COLOR": "1"}
    env.pop("COMPOSER_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-m", "composer", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=120,
    )


def assert_no_secret(proc: subprocess.CompletedProcess[str]) -> None:
    output = proc.stdout + proc.stderr
    for value in PLANTED:
        assert value not in output, f"{value!r} printed:\n{output}"
    assert "Traceback" not in output


def test_deploy_dry_run_hides_both_kinds(tmp_path: Path) -> None:
    proc = sm_compose("deploy", str(pipeline(tmp_path)), "--dry-run", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert_no_secret(proc)
    assert f'"AWS_SECRET_ACCESS_KEY": "{REDACTED}"' in proc.stdout
    assert f'"AWS_SESSION_TOKEN": "{REDACTED}"' in proc.stdout


def test_transform_on_sagemaker_dry_run_hides_both_kinds(tmp_path: Path) -> None:
    proc = sm_compose(
        "transform",
        str(pipeline(tmp_path)),
        "--on-sagemaker",
        "--dry-run",
        "--input",
        "s3://bucket/in/",
        "--output",
        "s3://bucket/out/",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert_no_secret(proc)
    assert "CreateTransformJob" in proc.stdout and REDACTED in proc.stdout


def test_deploy_against_an_unreachable_endpoint_is_an_error_without_secrets(
    tmp_path: Path,
) -> None:
    proc = sm_compose("deploy", str(pipeline(tmp_path)), "--no-wait", cwd=tmp_path)
    assert proc.returncode == 1
    assert proc.stderr.startswith("error: AWS: Could not connect to the endpoint URL")
    assert "internal error" not in proc.stderr
    assert_no_secret(proc)


def test_invoke_against_an_unreachable_endpoint_is_an_error_without_secrets(
    tmp_path: Path,
) -> None:
    proc = sm_compose("invoke", "secrets", "--data", "{}", cwd=tmp_path)
    assert proc.returncode == 1
    assert "Could not connect to the endpoint URL" in proc.stderr
    assert_no_secret(proc)


def test_a_secret_pasted_into_the_wrong_field_is_hidden_in_the_spec_error(
    tmp_path: Path,
) -> None:
    """A user who pastes credentials where the region and role go sees where, not what."""
    path = pipeline(
        tmp_path,
        region=PLANTED_ENV["AWS_SECRET_ACCESS_KEY"],
        role=PLANTED_SPEC["AWS_ACCESS_KEY_ID"],
    )
    proc = sm_compose("validate", str(path), cwd=tmp_path)
    assert proc.returncode == 2
    lines = proc.stderr.splitlines()
    assert lines[0].startswith(f"{path}:10: aws.region: got '{REDACTED}'")
    assert lines[1].startswith(f"{path}:11: aws.role_arn: got '{REDACTED}'")
    assert_no_secret(proc)


def test_redact_text_hides_access_key_ids_and_this_process_credentials(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in PLANTED_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_WEB_IDENTITY_TOKEN_FILE", "/var/run/secrets/token")
    text = " ".join([*PLANTED_ENV.values(), "ASIAABCDEFGHIJKLMNOP", "/var/run/secrets/token"])
    assert redact_text(text) == " ".join([REDACTED] * 4 + ["/var/run/secrets/token"])
    assert redact({"Environment": {"DB_PASSWORD": "pw", "MODE": "fast"}}) == {
        "Environment": {"DB_PASSWORD": REDACTED, "MODE": "fast"}
    }
