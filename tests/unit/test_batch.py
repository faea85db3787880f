"""Transform parameters, record splitting and packing, and CreateTransformJob documents."""

from __future__ import annotations

import gzip
import json
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest

from composer.aws.transform import JobSettings, job_name, transform_job_request
from composer.batch import TransformOptions, settle
from composer.batch.params import parse_execution_parameters
from composer.batch.records import (
    RecordError,
    assemble,
    decompress,
    mini_batches,
    split_records,
)
from composer.batch.storage import list_inputs, parse_s3
from composer.errors import UsageError
from composer.spec import load_pipeline
from composer.spec.models import Pipeline


def _pipeline(tmp_path: Path, mode: str = "Serial", extra: str = "") -> Pipeline:
    for name in ("a", "b"):
        (tmp_path / name).mkdir(exist_ok=True)
        (tmp_path / name / "inference.py").write_text("def model_fn(d):\n    return None\n")
        (tmp_path / name / "requirements.txt").write_text("")
    path = tmp_path / "p.yaml"
    text = f"""
    name: batchy
    mode: {mode}
    containers:
      - hostname: a
        build: a
      - hostname: b
        build: b
    aws:
      tags:
        team: nlp
    """
    path.write_text(textwrap.dedent(text) + textwrap.dedent(extra))
    return load_pipeline(path)


# --- parameters ---------------------------------------------------------------------------------


def test_job_values_win_then_containers_then_defaults() -> None:
    answers = {
        "a": parse_execution_parameters(
            "a",
            {"MaxConcurrentTransforms": 4, "BatchStrategy": "MULTI_RECORD", "MaxPayloadInMB": 6},
        ),
        "b": parse_execution_parameters("b", {"MaxConcurrentTransforms": 2}),
    }
    settled = settle(TransformOptions(max_payload_mb=3), answers)
    assert (settled.max_concurrent, settled.strategy, settled.max_payload_mb) == (
        2,
        "MultiRecord",
        3,
    )
    assert settled.origin == {
        "concurrent": "from container b's /execution-parameters",
        "strategy": "from container a's /execution-parameters",
        "payload": "set for the job",
    }
    defaults = settle(TransformOptions(), {"a": {}, "b": {}})
    assert (defaults.max_concurrent, defaults.strategy, defaults.max_payload_mb) == (
        1,
        "MultiRecord",
        6,
    )


def test_single_record_from_any_container_wins() -> None:
    answers = {
        "a": parse_execution_parameters("a", {"BatchStrategy": "MULTI_RECORD"}),
        "b": parse_execution_parameters("b", {"BatchStrategy": "SINGLE_RECORD"}),
    }
    assert settle(TransformOptions(), answers).strategy == "SingleRecord"


def test_product_above_100_is_refused_wherever_the_values_come_from() -> None:
    with pytest.raises(UsageError, match=r"MaxConcurrentTransforms 11 x MaxPayloadInMB 10 = 110"):
        TransformOptions(max_concurrent=11, max_payload_mb=10)
    answers = {"a": parse_execution_parameters("a", {"MaxConcurrentTransforms": 20})}
    with pytest.raises(UsageError, match=r"20 x MaxPayloadInMB 6 = 120.*at most 100"):
        settle(TransformOptions(), answers)
    assert settle(TransformOptions(max_payload_mb=0), answers).payload_limit is None


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"max_payload_mb": 101}, "--max-payload-mb: got 101; MaxPayloadInMB is 0 to 100"),
        ({"max_concurrent": 0}, "--max-concurrent: got 0"),
        ({"split_type": "RecordIO"}, "--split-type: got 'RecordIO'; one of None, Line"),
        ({"invocations_max_retries": 4}, "--invocations-max-retries: got 4; 0 to 3"),
    ],
)
def test_bad_options_say_what_is_allowed(kwargs: dict[str, object], needle: str) -> None:
    with pytest.raises(UsageError) as info:
        TransformOptions(**kwargs)  # type: ignore[arg-type]
    assert needle in str(info.value)


@pytest.mark.parametrize(
    ("answer", "needle"),
    [
        ([1, 2], "expected a JSON object"),
        ({"MaxConcurrentTransforms": "8"}, "MaxConcurrentTransforms '8'"),
        ({"MaxPayloadInMB": 200}, "MaxPayloadInMB 200"),
        ({"BatchStrategy": "BOTH"}, "expected MULTI_RECORD or SINGLE_RECORD"),
    ],
)
def test_bad_execution_parameters_name_the_container(answer: object, needle: str) -> None:
    with pytest.raises(UsageError, match="container spacy") as info:
        parse_execution_parameters("spacy", answer)
    assert needle in str(info.value)


def test_container_env_has_batch_and_only_the_values_set() -> None:
    assert TransformOptions().container_env() == {"SAGEMAKER_BATCH": "true"}
    env = TransformOptions(strategy="SingleRecord", max_payload_mb=2, max_concurrent=3)
    assert env.container_env() == {
        "SAGEMAKER_BATCH": "true",
        "SAGEMAKER_MAX_PAYLOAD_IN_MB": "2",
        "SAGEMAKER_BATCH_STRATEGY": "SINGLE_RECORD",
        "SAGEMAKER_MAX_CONCURRENT_TRANSFORMS": "3",
    }


def test_spec_defaults_are_overridden_by_options(tmp_path: Path) -> None:
    pipeline = _pipeline(
        tmp_path,
        extra="""
    transform:
      max_payload_mb: 2
      batch_strategy: SingleRecord
      invocations_timeout: 120
    """,
    )
    options = TransformOptions.from_spec(pipeline, max_payload_mb=1, strategy=None)
    assert (options.max_payload_mb, options.strategy, options.invocations_timeout) == (
        1,
        "SingleRecord",
        120,
    )


def test_direct_pipelines_have_no_batch_transform(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="real time only"):
        _pipeline(tmp_path, mode="Direct").check_batch_transform()
    _pipeline(tmp_path, mode="Serial").check_batch_transform()


# --- records ------------------------------------------------------------------------------------


def test_line_split_skips_blank_lines_and_carriage_returns() -> None:
    assert split_records(b'{"a":1}\r\n\n{"a":2}\n  \n', "Line") == [b'{"a":1}', b'{"a":2}']
    assert split_records(b"whole\nobject\n", "None") == [b"whole\nobject\n"]


def test_mini_batches_fill_up_to_the_limit_and_keep_order() -> None:
    records = [f"r{i:04d}".encode() for i in range(100)]  # 5 bytes each, 6 framed
    batches = list(
        mini_batches(records, split_type="Line", strategy="MultiRecord", limit=60, name="in")
    )
    assert [b.count for b in batches] == [10] * 10
    assert all(len(b.body) <= 60 for b in batches)
    assert b"".join(b.body for b in batches) == b"".join(r + b"\n" for r in records)
    assert batches[1].records == "records 11-20"
    single = list(
        mini_batches(records, split_type="Line", strategy="SingleRecord", limit=60, name="in")
    )
    assert len(single) == 100 and single[4].body == b"r0004\n" and single[4].records == "record 5"
    unlimited = list(
        mini_batches(records, split_type="Line", strategy="MultiRecord", limit=None, name="in")
    )
    assert len(unlimited) == 1 and unlimited[0].count == 100


def test_an_oversized_record_names_the_file_and_record() -> None:
    records = [b"small", b"x" * 100, b"small"]
    with pytest.raises(RecordError) as info:
        list(
            mini_batches(
                records, split_type="Line", strategy="MultiRecord", limit=50, name="data.jsonl"
            )
        )
    assert str(info.value).startswith("data.jsonl: record 2 has 101 bytes")
    assert "(50 bytes)" in str(info.value)


def test_gzip_input_and_a_bad_archive() -> None:
    assert decompress(gzip.compress(b"a\nb\n"), "Gzip", "x.gz") == b"a\nb\n"
    with pytest.raises(RecordError, match=r"x\.jsonl: cannot be read as Gzip"):
        decompress(b"plain text", "Gzip", "x.jsonl")


def test_assemble_line_ends_every_answer_with_a_newline() -> None:
    assert assemble([b"a\nb\n", b"c"], "Line") == b"a\nb\nc\n"
    assert assemble([b"a", b"b"], "None") == b"ab"


def test_inputs_from_a_file_and_a_folder(tmp_path: Path) -> None:
    (tmp_path / "in" / "sub").mkdir(parents=True)
    (tmp_path / "in" / "b.jsonl").write_text("{}\n")
    (tmp_path / "in" / "sub" / "a.jsonl").write_text("{}\n")
    (tmp_path / "in" / ".hidden").write_text("skip")
    names = [o.name for o in list_inputs(str(tmp_path / "in"))]
    assert names == ["b.jsonl", "sub/a.jsonl"]
    assert [o.name for o in list_inputs(str(tmp_path / "in" / "b.jsonl"))] == ["b.jsonl"]
    with pytest.raises(UsageError, match="neither a file, a folder nor s3://"):
        list_inputs(str(tmp_path / "missing"))
    assert parse_s3("s3://bucket/a/b") == ("bucket", "a/b")
    with pytest.raises(UsageError, match="s3://BUCKET"):
        parse_s3("s3://")


# --- CreateTransformJob -------------------------------------------------------------------------


def test_transform_job_request_mirrors_the_options(tmp_path: Path) -> None:
    pipeline = _pipeline(tmp_path, extra="transform:\n  instance_type: ml.c5.xlarge\n")
    options = TransformOptions(
        content_type="application/jsonlines",
        accept="application/jsonlines",
        split_type="Line",
        strategy="MultiRecord",
        max_payload_mb=2,
        max_concurrent=4,
        assemble_with="Line",
        compression="Gzip",
    )
    settings = JobSettings("s3://in-bucket/data/", "s3://out-bucket/results/", job_name="job-1")
    request = transform_job_request(pipeline, "batchy-0123abcd", options, settings)
    assert request == {
        "TransformJobName": "job-1",
        "ModelName": "batchy-0123abcd",
        "MaxConcurrentTransforms": 4,
        "MaxPayloadInMB": 2,
        "BatchStrategy": "MultiRecord",
        "ModelClientConfig": {"InvocationsTimeoutInSeconds": 600, "InvocationsMaxRetries": 3},
        "TransformInput": {
            "DataSource": {
                "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://in-bucket/data/"}
            },
            "CompressionType": "Gzip",
            "SplitType": "Line",
            "ContentType": "application/jsonlines",
        },
        "TransformOutput": {
            "S3OutputPath": "s3://out-bucket/results/",
            "AssembleWith": "Line",
            "Accept": "application/jsonlines",
        },
        "TransformResources": {"InstanceType": "ml.c5.xlarge", "InstanceCount": 1},
        "Tags": [{"Key": "team", "Value": "nlp"}],
    }
    json.dumps(request)  # plain data, printable by --dry-run


def test_transform_job_request_leaves_unset_values_to_sagemaker(tmp_path: Path) -> None:
    request = transform_job_request(
        _pipeline(tmp_path),
        "m",
        TransformOptions(),
        JobSettings("s3://bkt/in", "s3://bkt/out", job_name="j"),
    )
    assert "MaxConcurrentTransforms" not in request and "BatchStrategy" not in request
    assert request["TransformResources"] == {"InstanceType": "ml.m5.large", "InstanceCount": 1}


def test_transform_jobs_read_and_write_s3_only(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"--input: got 'data\.jsonl'; a SageMaker transform job"):
        transform_job_request(
            _pipeline(tmp_path), "m", TransformOptions(), JobSettings("data.jsonl", "s3://bkt/o")
        )
    with pytest.raises(UsageError, match="--job-name: got 'bad_name'"):
        transform_job_request(
            _pipeline(tmp_path),
            "m",
            TransformOptions(),
            JobSettings("s3://bkt/i", "s3://bkt/o", job_name="bad_name"),
        )


def test_job_names_stay_valid() -> None:
    class P:
        name = "x" * 63

    when = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
    name = job_name(P(), when)  # type: ignore[arg-type]
    assert len(name) == 63 and name.endswith("-20240501-120000")
