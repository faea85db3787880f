"""Local batch transforms through real containers (nginx, gunicorn, falcon) chained Serial.

The `batchy` fixture container answers one line per record with the record's number, the size
of the mini-batch it arrived in, the containers that saw it and the SAGEMAKER_* environment.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest

from composer.batch import TransformOptions, TransformResult, transform_local
from composer.spec import load_pipeline
from tests.integration.aws_fixtures import MotoServer

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
BATCHY = ROOT / "tests" / "integration" / "fixtures" / "batchy"
#: What the `jsonl` fixture (tests/conftest.py) gives: TransformOptions for JSON Lines.
Jsonl = Callable[..., TransformOptions]


def _pipeline(folder: Path, *, second_env: str = "BATCHY_CONCURRENT: 2") -> Path:
    path = folder / "batchy.yaml"
    path.write_text(
        f"""
name: batchy
mode: Serial
containers:
  - hostname: first
    build: {BATCHY}
    environment: {{BATCHY_STEP: first}}
  - hostname: second
    build: {BATCHY}
    environment: {{BATCHY_STEP: second, {second_env}}}
"""
    )
    return path


def _records(path: Path, count: int, pad: int = 100, **extra: Any) -> Path:
    with path.open("w") as f:
        for i in range(count):
            f.write(json.dumps({"n": i, "pad": "x" * pad, **extra}) + "\n")
    return path


def _run(
    pipeline: Path, options: TransformOptions, src: Path | str, out: Path | str
) -> TransformResult:
    return asyncio.run(transform_local(load_pipeline(pipeline), options, str(src), str(out)))


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_multi_record_many_mini_batches_in_order(tmp_path: Path, jsonl: Jsonl) -> None:
    src = _records(tmp_path / "in.jsonl", 3000, pad=400)  # about 1.25 MB: 2 MiB would be 1 batch
    out = tmp_path / "out"
    result = _run(_pipeline(tmp_path), jsonl(max_payload_mb=1), src, out)
    assert not result.failed, result.objects
    assert result.settled is not None
    # The job set the payload; the strictest container (second) set the concurrency.
    assert (result.settled.max_payload_mb, result.settled.max_concurrent) == (1, 2)
    lines = _lines(out / "in.jsonl.out")
    assert [line["n"] for line in lines] == list(range(3000))
    assert all(line["square"] == line["n"] ** 2 for line in lines)
    assert all(line["seen"] == ["first", "second"] for line in lines)
    sizes = {line["batch"] for line in lines}
    assert result.requests == 2 and len(sizes) == 2 and max(sizes) < 3000
    assert lines[0]["env"] == {
        "SAGEMAKER_BATCH": "true",
        "SAGEMAKER_MAX_PAYLOAD_IN_MB": "1",
        "SAGEMAKER_BATCH_STRATEGY": None,
        "SAGEMAKER_MAX_CONCURRENT_TRANSFORMS": None,
    }


def test_single_record_folder_and_gzip(tmp_path: Path, jsonl: Jsonl) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    _records(folder / "a.jsonl", 40)
    (folder / "b.jsonl.gz").write_bytes(gzip.compress(_records(tmp_path / "b", 25).read_bytes()))
    out = tmp_path / "out"
    options = jsonl(compression="Gzip", strategy="SingleRecord", max_concurrent=4)
    # Gzip applies to every object of a job, as in SageMaker: the plain one fails to open.
    result = _run(_pipeline(tmp_path), options, folder, out)
    assert [o.name for o in result.failed] == ["a.jsonl"]
    assert result.failed[0].failures[0].startswith("a.jsonl: cannot be read as Gzip")
    lines = _lines(out / "b.jsonl.gz.out")
    assert [line["n"] for line in lines] == list(range(25))
    assert {line["batch"] for line in lines} == {1}
    assert lines[0]["env"]["SAGEMAKER_BATCH_STRATEGY"] == "SINGLE_RECORD"
    assert result.requests == 25


def test_failures_are_per_object_and_record_and_leave_no_output(
    tmp_path: Path, jsonl: Jsonl
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    _records(folder / "good.jsonl", 50)
    big = _records(folder / "big.jsonl", 3)
    with big.open("a") as f:
        f.write(json.dumps({"n": 3, "pad": "y" * 1_100_000}) + "\n")
    bad = _records(folder / "bad.jsonl", 30)
    with bad.open("a") as f:
        f.write(json.dumps({"n": 30, "fail": True}) + "\n")
    out = tmp_path / "out"
    options = jsonl(strategy="SingleRecord", max_payload_mb=1)
    result = _run(_pipeline(tmp_path), options, folder, out)
    failed = {o.name: o for o in result.failed}
    assert set(failed) == {"big.jsonl", "bad.jsonl"}
    assert failed["big.jsonl"].failures[0].startswith("big.jsonl: record 4 has 1100")
    assert "bad.jsonl: record 31: ModelError" in failed["bad.jsonl"].failures[0]
    assert "record 30 asks to fail" in failed["bad.jsonl"].failures[0]
    assert sorted(p.name for p in out.iterdir()) == ["good.jsonl.out"]
    assert len(_lines(out / "good.jsonl.out")) == 50


def test_cli_exit_status_and_messages(tmp_path: Path) -> None:
    src = _records(tmp_path / "in.jsonl", 5)
    with src.open("a") as f:
        f.write(json.dumps({"n": 5, "fail": True}) + "\n")
    argv = [sys.executable, "-m", "composer", "transform", str(_pipeline(tmp_path))]
    argv += ["--input", str(src), "--output", str(tmp_path / "out"), "--split-type", "Line"]
    argv += ["--content-type", "application/jsonlines", "--strategy", "SingleRecord"]
    done = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert done.returncode == 1, done.stderr
    assert "failed: in.jsonl: record 6: ModelError" in done.stderr
    assert "error: 1 object(s) failed, no output for: in.jsonl" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "out" / "in.jsonl.out").exists()
    direct = tmp_path / "direct.yaml"
    direct.write_text(_pipeline(tmp_path).read_text().replace("mode: Serial", "mode: Direct"))
    argv[4] = str(direct)
    done = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 2
    assert "batch transform needs a Serial or single-container pipeline" in done.stderr


# --- S3 input and output on moto's server -----------------------------------------------------


@pytest.mark.aws
def test_s3_prefix_in_and_out(tmp_path: Path, moto: MotoServer, jsonl: Jsonl) -> None:
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="batch-in")
    s3.create_bucket(Bucket="batch-out")
    for name, count in (("one.jsonl", 10), ("deeper/two.jsonl", 12)):
        body = "".join(json.dumps({"n": i}) + "\n" for i in range(count))
        s3.put_object(Bucket="batch-in", Key=f"jobs/{name}", Body=body.encode())
    result = _run(_pipeline(tmp_path), jsonl(), "s3://batch-in/jobs/", "s3://batch-out/r")
    assert not result.failed
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket="batch-out")["Contents"])
    assert keys == ["r/deeper/two.jsonl.out", "r/one.jsonl.out"]
    body = s3.get_object(Bucket="batch-out", Key="r/deeper/two.jsonl.out")["Body"].read()
    assert [json.loads(line)["n"] for line in body.splitlines()] == list(range(12))
    assert os.environ["AWS_ENDPOINT_URL_S3"] == moto.url
