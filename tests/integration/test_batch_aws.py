"""`transform --on-sagemaker` against moto's server: the model, CreateTransformJob, waiting."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from composer.aws.plan import preflight
from composer.aws.report import Quiet
from composer.aws.transform import run_transform_job
from composer.batch import TransformOptions
from composer.render.transform import JobSettings
from composer.spec import load_pipeline
from tests.aws_pipelines import write_pipeline
from tests.integration.aws_fixtures import ROOT, MotoServer, Recorder, recorded_clients

pytestmark = pytest.mark.aws


def test_job_uses_the_deployed_model_name_and_sends_the_options(
    moto: MotoServer, tmp_path: Path, jsonl: Callable[..., TransformOptions]
) -> None:
    moto.reset()
    path = write_pipeline(tmp_path, mode="Serial", bucket="models-bucket")
    recorder = Recorder()
    clients = recorded_clients(recorder)
    clients.s3.create_bucket(Bucket="models-bucket")
    plan = preflight(load_pipeline(path), str(path), "us-east-1")
    options = jsonl(
        accept=None,
        strategy="MultiRecord",
        max_payload_mb=4,
        max_concurrent=2,
        invocations_timeout=300,
        invocations_max_retries=1,
    )
    settings = JobSettings("s3://data-in/texts/", "s3://data-out/results/", job_name="nlp-job-1")
    reporter = Quiet()
    described = run_transform_job(plan, options, settings, clients, reporter)
    assert described["TransformJobStatus"] == "Completed"
    model = plan.requests("models-bucket").model_name
    assert recorder.ops("sagemaker") == [
        "DescribeModel",
        "CreateModel",
        "CreateTransformJob",
        "DescribeTransformJob",
    ]
    [sent] = recorder.sent("CreateTransformJob")
    assert sent["ModelName"] == model
    assert sent["TransformJobName"] == "nlp-job-1"
    assert (sent["MaxConcurrentTransforms"], sent["MaxPayloadInMB"], sent["BatchStrategy"]) == (
        2,
        4,
        "MultiRecord",
    )
    assert sent["ModelClientConfig"] == {
        "InvocationsTimeoutInSeconds": 300,
        "InvocationsMaxRetries": 1,
    }
    assert sent["TransformInput"]["SplitType"] == "Line"
    assert sent["TransformOutput"] == {
        "S3OutputPath": "s3://data-out/results/",
        "AssembleWith": "Line",
    }
    assert sent["TransformResources"] == {"InstanceType": "ml.m5.large", "InstanceCount": 1}
    # The model data went up as deploy uploads it; a second job finds the model.
    assert "PutObject" in recorder.ops("s3")
    recorder.clear()
    run_transform_job(
        plan,
        options,
        JobSettings("s3://data-in/t/", "s3://data-out/r/", job_name="nlp-job-2"),
        clients,
        reporter,
    )
    assert recorder.ops("sagemaker") == [
        "DescribeModel",
        "CreateTransformJob",
        "DescribeTransformJob",
    ]


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "composer", "transform", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def test_cli_on_sagemaker_and_dry_run(moto: MotoServer, tmp_path: Path) -> None:
    moto.reset()
    path = write_pipeline(tmp_path, mode="Serial", bucket="models-bucket")
    recorded_clients(Recorder()).s3.create_bucket(Bucket="models-bucket")
    common = [str(path), "--input", "s3://data-in/x/", "--output", "s3://data-out/y/"]
    common += ["--on-sagemaker", "--split-type", "Line", "--job-name", "cli-job"]
    done = _cli(*common)
    assert done.returncode == 0, done.stderr
    assert "cli-job: Completed (output s3://data-out/y/)" in done.stdout
    # --dry-run calls nothing: every AWS endpoint points at a closed port and it still works.
    dead = {f"AWS_ENDPOINT_URL_{s}": "http://127.0.0.1:9" for s in ("SAGEMAKER", "S3", "STS")}
    done = _cli(*common, "--dry-run", env=dead)
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    ops = [c["operation"] for c in document["calls"]]
    assert ops == ["CreateModel", "CreateTransformJob"]
    job = document["calls"][1]["params"]
    assert job["ModelName"] == document["calls"][0]["params"]["ModelName"]
    assert job["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"] == "s3://data-in/x/"


def test_cli_refusals(moto: MotoServer, tmp_path: Path) -> None:
    direct = write_pipeline(tmp_path / "d", mode="Direct")
    done = _cli(str(direct), "--input", "s3://a-b/x", "--output", "s3://a-b/y", "--on-sagemaker")
    assert done.returncode == 2
    assert "SageMaker serves multi-container models with direct invocation in real time" in (
        done.stderr
    )
    serial = write_pipeline(tmp_path / "s", mode="Serial")
    done = _cli(str(serial), "--input", "local.jsonl", "--output", "s3://a-b/y", "--on-sagemaker")
    assert done.returncode == 2
    assert "a SageMaker transform job reads and writes S3 only" in done.stderr
    done = _cli(str(serial), "--input", "x", "--output", "y", "--dry-run")
    assert done.returncode == 2 and "--dry-run: only with --on-sagemaker" in done.stderr
    assert "Traceback" not in done.stderr
