"""pipeline.yaml validation against a catalogue of bad specs: every error, located."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from composer.errors import SpecError
from composer.spec import load_pipeline
from composer.spec.models import Pipeline

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A folder with two container sources and a model archive, as a user's project has."""
    for name in ("a", "b"):
        src = tmp_path / "containers" / name
        src.mkdir(parents=True)
        (src / "inference.py").write_text("def model_fn(model_dir):\n    return None\n")
        (src / "requirements.txt").write_text("")
    (tmp_path / "model.tar.gz").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("not an archive")
    return tmp_path


def write(project: Path, text: str) -> Path:
    path = project / "pipeline.yaml"
    path.write_text(textwrap.dedent(text).lstrip())
    return path


GOOD = """
name: nlp
mode: Direct
containers:
  - hostname: a
    build: containers/a
    model_data: model.tar.gz
    environment:
      WORKERS: 2
      DEBUG: true
  - hostname: b
    image: 123456789012.dkr.ecr.us-east-1.amazonaws.com/b:1
"""


def test_good_spec_loads_with_defaults(project: Path) -> None:
    p = load_pipeline(write(project, GOOD))
    assert p.name == "nlp"
    assert p.mode == "Direct"
    assert p.endpoint.instance_type == "ml.m5.large"
    assert p.endpoint.instance_count == 1
    assert p.endpoint.variant_name == "AllTraffic"
    assert p.base_image == "python:3.11-slim"
    assert p.containers[0].env == {"WORKERS": "2", "DEBUG": "true"}
    assert p.resolve(p.containers[0].build or "") == (project / "containers" / "a").resolve()
    assert p.source == (project / "pipeline.yaml").resolve()


def test_mode_defaults_to_serial(project: Path) -> None:
    text = GOOD.replace("mode: Direct\n", "")
    assert load_pipeline(write(project, text)).mode == "Serial"


# (yaml, [(line, dotted path, fragment of message)])
CATALOGUE: list[tuple[str, str, list[tuple[int, str, str]]]] = [
    (
        "bad hostname, as in the docs",
        """
        name: x
        mode: Direct
        containers:
          - hostname: a
            build: containers/a
          - hostname: spacy_ner
            build: containers/b
        """,
        [(6, "containers[1].hostname", "got 'spacy_ner'; a SageMaker container hostname")],
    ),
    (
        "bad pipeline name",
        """
        name: -bad-
        containers:
          - hostname: a
            build: containers/a
        """,
        [(1, "name", "got '-bad-'")],
    ),
    (
        "unknown keys at several levels",
        """
        name: x
        colour: blue
        containers:
          - hostname: a
            build: containers/a
            gpu: true
        endpoint:
          instances: 3
        """,
        [
            (2, "colour", "got unknown key 'colour'; allowed keys here: name, mode"),
            (6, "containers[0].gpu", "unknown key 'gpu'"),
            (8, "endpoint.instances", "unknown key 'instances'"),
        ],
    ),
    (
        "missing required fields",
        """
        mode: Serial
        containers:
          - build: containers/a
        """,
        [(1, "name", "missing"), (3, "containers[0].hostname", "missing")],
    ),
    (
        "both build and image, and neither",
        """
        name: x
        containers:
          - hostname: a
            build: containers/a
            image: foo:1
          - hostname: b
        """,
        [
            (3, "containers[0]", "got both of build and image"),
            (6, "containers[1]", "got neither of build and image"),
        ],
    ),
    (
        "wrong mode and counts",
        """
        name: x
        mode: Parallel
        containers: []
        """,
        [(2, "mode", "got 'Parallel'; should be 'Direct' or 'Serial'"), (3, "containers", "")],
    ),
    (
        "environment rules",
        """
        name: x
        containers:
          - hostname: a
            build: containers/a
            environment:
              9LIVES: x
              OK: [1, 2]
        """,
        [
            (6, "containers[0].environment.9LIVES", "got key '9LIVES'"),
            (7, "containers[0].environment.OK", "should be a string, number or boolean"),
        ],
    ),
    (
        "duplicate hostnames",
        """
        name: x
        containers:
          - hostname: a
            build: containers/a
          - hostname: a
            build: containers/b
        """,
        [(5, "containers[1].hostname", "got 'a' again (also containers[0])")],
    ),
    (
        "direct with one container",
        """
        name: x
        mode: Direct
        containers:
          - hostname: a
            build: containers/a
        """,
        [(2, "mode", "Direct needs 2 to 15 containers")],
    ),
    (
        "missing folders and files",
        """
        name: x
        containers:
          - hostname: a
            build: containers/nope
          - hostname: b
            build: containers/b
            model_data: nothing.tar.gz
          - hostname: c
            build: containers/a
            model_data: notes.txt
        """,
        [
            (4, "containers[0].build", "not a folder"),
            (7, "containers[1].model_data", "does not exist"),
            (10, "containers[2].model_data", "is a .tar.gz archive"),
        ],
    ),
    (
        "bad s3 model data and role",
        """
        name: x
        containers:
          - hostname: a
            build: containers/a
            model_data: s3://bucket/model.zip
        aws:
          role_arn: arn:aws:iam::12:role/x
        """,
        [
            (5, "containers[0].model_data", "of a .tar.gz archive"),
            (7, "aws.role_arn", "12-digit account"),
        ],
    ),
    (
        "endpoint limits",
        """
        name: x
        containers:
          - hostname: a
            build: containers/a
        endpoint:
          instance_count: 0
          startup_health_check_timeout: 10
          autoscaling:
            min_instances: 3
            max_instances: 1
            target_invocations_per_instance: 100
        """,
        [
            (6, "endpoint.instance_count", "got 0"),
            (7, "endpoint.startup_health_check_timeout", "greater than or equal to 60"),
            (8, "endpoint.autoscaling", "below min_instances"),
        ],
    ),
    (
        "async needs a single container",
        """
        name: x
        containers:
          - hostname: a
            build: containers/a
          - hostname: b
            build: containers/b
        async:
          output_path: s3://bucket/out
          colour: red
        """,
        [(9, "async.colour", "got unknown key 'colour'; allowed keys here: output_path")],
    ),
    (
        "async with two containers",
        """
        name: x
        containers:
          - hostname: a
            build: containers/a
          - hostname: b
            build: containers/b
        async:
          output_path: s3://bucket/out
        """,
        [(7, "async", "asynchronous inference needs a single-container pipeline")],
    ),
    (
        "transform with Direct",
        """
        name: x
        mode: Direct
        containers:
          - hostname: a
            build: containers/a
          - hostname: b
            build: containers/b
        transform:
          instance_count: 2
        """,
        [(8, "transform", "batch transform needs a Serial or single-container pipeline")],
    ),
    ("yaml syntax error", "name: x\ncontainers: [\n  - a: 1\n", [(3, "", "YAML syntax error")]),
    ("not a mapping", "- 1\n- 2\n", [(1, "", "a pipeline file is a mapping")]),
]


@pytest.mark.parametrize(
    ("text", "expected"), [(c[1], c[2]) for c in CATALOGUE], ids=[c[0] for c in CATALOGUE]
)
def test_bad_specs_report_every_error_with_line_and_path(
    project: Path, text: str, expected: list[tuple[int, str, str]]
) -> None:
    path = write(project, text)
    with pytest.raises(SpecError) as caught:
        load_pipeline(path)
    got = [(i.line, i.path, i.message) for i in caught.value.issues]
    assert len(got) == len(expected), got
    for (line, dotted, fragment), (got_line, got_path, message) in zip(
        expected, sorted(got), strict=True
    ):
        assert (got_line, got_path) == (line, dotted), got
        assert fragment in message, message


def test_environment_total_over_32_kb(project: Path) -> None:
    big = "x" * 1000
    entries = "\n".join(f"      K{i}: {big}" for i in range(40))
    head = "name: x\ncontainers:\n  - hostname: a\n    build: containers/a\n    environment:\n"
    text = f"{head}{entries}\n"
    with pytest.raises(SpecError) as caught:
        load_pipeline(write(project, text))
    (issue,) = caught.value.issues
    assert issue.path == "containers"
    assert "SageMaker allows at most 32768" in issue.message


def test_more_than_15_containers(project: Path) -> None:
    items = "".join(f"  - hostname: c{i}\n    build: containers/a\n" for i in range(16))
    with pytest.raises(SpecError) as caught:
        load_pipeline(write(project, f"name: x\ncontainers:\n{items}"))
    assert any("at most 15" in i.message for i in caught.value.issues)


def test_validate_command_prints_every_error_and_exits_2(project: Path) -> None:
    path = write(project, CATALOGUE[2][1])
    proc = subprocess.run(
        [sys.executable, "-m", "composer", "validate", str(path)],
        capture_output=True,
        text=True,
        cwd=project,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 3
    assert lines[0].startswith(f"{path}:2: colour: got unknown key 'colour'")
    assert "Traceback" not in proc.stderr


def test_validate_missing_file_is_a_message(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "composer", "validate", str(tmp_path / "none.yaml")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert "no such file" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_schema_forbids_extras_and_describes_every_field() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "composer", "schema"], capture_output=True, text=True, check=True
    )
    schema = json.loads(proc.stdout)
    assert schema["additionalProperties"] is False
    for name, definition in [("Pipeline", schema), *schema["$defs"].items()]:
        if "properties" not in definition:
            continue
        assert definition.get("additionalProperties") is False, name
        for field, prop in definition["properties"].items():
            assert prop.get("description"), f"{name}.{field} has no description"


def test_schema_matches_the_committed_copy() -> None:
    committed = json.loads((REPO / "docs" / "pipeline.schema.json").read_text())
    assert committed == json.loads(json.dumps(Pipeline.model_json_schema())) | {
        "$schema": committed["$schema"],
        "title": committed["title"],
    }


# --- multi-model containers ---------------------------------------------------------------------


def _multi(project: Path, model_data: str, *, mode: str = "Serial", extra: str = "") -> Path:
    (project / "models" / "v2").mkdir(parents=True, exist_ok=True)
    (project / "models" / "en.tar.gz").write_bytes(b"")
    (project / "models" / "v2" / "de.tar.gz").write_bytes(b"")
    return write(
        project,
        f"""
        name: mm
        mode: {mode}
        containers:
          - hostname: a
            build: containers/a
            multi_model: true
            model_data: {model_data}
          - hostname: b
            build: containers/b
        {extra}
        """,
    )


@pytest.mark.parametrize("model_data", ["models", "models/", "s3://bucket/models/", "s3://b-1/m"])
def test_multi_model_takes_a_folder_or_an_s3_prefix(project: Path, model_data: str) -> None:
    p = load_pipeline(_multi(project, model_data))
    c = p.containers[0]
    assert c.multi_model and c.model_data == model_data
    assert c.model_env == {"SAGEMAKER_MULTI_MODEL": "true"}
    assert p.containers[1].model_env == {}


def test_multi_model_env_flag_comes_first_and_a_matching_one_is_allowed(project: Path) -> None:
    path = _multi(project, "models")
    text = path.read_text().replace(
        "    model_data: models\n",
        "    model_data: models\n    environment:\n"
        '      A: 1\n      SAGEMAKER_MULTI_MODEL: "true"\n',
    )
    c = load_pipeline(write(project, text)).containers[0]
    assert list(c.model_env.items()) == [("SAGEMAKER_MULTI_MODEL", "true"), ("A", "1")]


@pytest.mark.parametrize(
    ("model_data", "mode", "extra", "where", "fragment"),
    [
        ("models", "Direct", "", "containers[0].multi_model", "in a Direct pipeline"),
        ("models/en.tar.gz", "Serial", "", "containers[0].model_data", "one archive"),
        ("s3://bucket/m/en.tar.gz", "Serial", "", "containers[0].model_data", "S3 prefix"),
        ("s3://bucket/m/en.tgz", "Serial", "", "containers[0].model_data", "S3 prefix"),
        ("nowhere", "Serial", "", "containers[0].model_data", "does not exist"),
        ("notes.txt", "Serial", "", "containers[0].model_data", "not a folder"),
        ("models", "Serial", "transform: {}", "transform", "batch transform does not support"),
    ],
)
def test_multi_model_refusals(
    project: Path, model_data: str, mode: str, extra: str, where: str, fragment: str
) -> None:
    with pytest.raises(SpecError) as caught:
        load_pipeline(_multi(project, model_data, mode=mode, extra=extra))
    (issue,) = caught.value.issues
    assert issue.path == where
    if where.endswith("multi_model"):
        assert issue.line == 6  # the multi_model: true line
    assert fragment in issue.message, issue.message


def test_multi_model_alone_refuses_async_but_a_plain_container_takes_it(project: Path) -> None:
    (project / "models").mkdir()
    text = """
    name: solo
    containers:
      - hostname: a
        build: containers/a
        multi_model: true
        model_data: models
    async:
      output_path: s3://bucket/out
    """
    with pytest.raises(SpecError) as caught:
        load_pipeline(write(project, text))
    (issue,) = caught.value.issues
    assert (issue.line, issue.path) == (7, "async")
    assert "asynchronous inference does not support multi-model endpoints" in issue.message
    lines = [line for line in text.splitlines(keepends=True) if "multi_model" not in line]
    plain = "".join(lines).replace("model_data: models", "model_data: model.tar.gz")
    assert load_pipeline(write(project, plain)).async_inference is not None


def test_multi_model_counts_its_flag_in_the_environment_limits(project: Path) -> None:
    (project / "models").mkdir()
    entries = "".join(f"      K{i}: v\n" for i in range(100))
    head = "name: x\ncontainers:\n  - hostname: a\n    build: containers/a\n"
    plain = f"{head}    environment:\n{entries}"
    assert len(load_pipeline(write(project, plain)).containers[0].env) == 100
    multi = f"{head}    multi_model: true\n    model_data: models\n    environment:\n{entries}"
    with pytest.raises(SpecError) as caught:
        load_pipeline(write(project, multi))
    (issue,) = caught.value.issues
    assert issue.path == "containers[0].environment"
    assert "plus SAGEMAKER_MULTI_MODEL, which multi_model adds" in issue.message


def test_cross_field_errors_come_in_file_order(project: Path) -> None:
    """Checks run rule by rule; the user reads the file top to bottom."""
    path = write(
        project,
        """
        name: x
        async:
          output_path: s3://bucket/out
        containers:
          - hostname: a
            build: containers/a
          - hostname: a
            build: containers/missing
        """,
    )
    with pytest.raises(SpecError) as e:
        load_pipeline(path)
    located = [(i.line, i.path) for i in e.value.issues]
    assert located == [
        (2, "async"),
        (7, "containers[1].hostname"),
        (8, "containers[1].build"),
    ]
