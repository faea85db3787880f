"""pipeline.yaml's models: what a good spec gives, and that a spec built in code meets the rules.

Every refused file, with the lines and messages `validate` must print, is in the catalogue
bad_specs/ (test_bad_specs.py).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from ruamel.yaml import YAML

from composer.errors import SpecError, UsageError
from composer.runners.contract import container_env
from composer.spec import load_pipeline
from composer.spec.models import Pipeline

REPO = Path(__file__).resolve().parents[2]
BAD_SPECS = Path(__file__).resolve().parent / "bad_specs"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/b:1"


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


GOOD = f"""
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
    image: {IMAGE}
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
    assert p.state_dir == project.resolve() / ".composer" / "nlp"


def test_a_part_of_a_pipeline_keeps_its_paths_and_works_elsewhere(
    project: Path, tmp_path: Path
) -> None:
    """What `up --watch` starts beside the running containers: some of them, with working
    files in a folder of their own, their relative paths still naming the same files."""
    text = GOOD.replace(
        "    build: ./containers/a\n", "    build: ./containers/a\n    model_data: ./model.tar.gz\n"
    )
    p = load_pipeline(write(project, text))
    part = p.part(["a"], tmp_path / "reload-1")
    assert [c.hostname for c in part.containers] == ["a"]
    assert part.state_dir == (tmp_path / "reload-1").resolve() / ".composer" / "nlp"
    (a,) = part.containers
    assert part.resolve(a.build or "") == p.resolve(p.containers[0].build or "")
    assert a.model_data == str((project / "model.tar.gz").resolve())
    assert (part.name, part.mode, a.env) == (p.name, p.mode, p.containers[0].env)
    assert p.state_dir == project.resolve() / ".composer" / "nlp"  # the original unchanged


def test_a_part_keeps_each_container_s_place_among_its_siblings(project: Path) -> None:
    """A reloaded container keeps its SAGEMAKER_SAFE_PORT_RANGE (so it never overlaps a
    neighbour's) and its log prefix's width: both come from the whole pipeline."""
    p = load_pipeline(write(project, GOOD))
    part = p.part(["b"], project / "reload-1")
    (b,) = part.containers
    assert part.siblings == p.siblings == ("a", "b")
    assert part.position("b") == p.position("b") == 1
    assert (
        container_env(b, part.position("b"), 8080)["SAGEMAKER_SAFE_PORT_RANGE"]
        == (container_env(p.containers[1], 1, 8080)["SAGEMAKER_SAFE_PORT_RANGE"])
        == "22000-22999"
    )
    assert part.part(["b"], project / "reload-2").position("b") == 1  # a part of a part


def test_mode_defaults_to_serial(project: Path) -> None:
    text = GOOD.replace("mode: Direct\n", "")
    assert load_pipeline(write(project, text)).mode == "Serial"


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


def test_schema_keeps_the_counted_limits_for_editors() -> None:
    schema = Pipeline.model_json_schema()
    assert schema["properties"]["containers"]["maxItems"] == 15
    container = schema["$defs"]["Container"]["properties"]
    assert container["environment"]["maxProperties"] == 100
    vpc = schema["$defs"]["VpcConfig"]["properties"]
    assert (vpc["security_group_ids"]["maxItems"], vpc["subnets"]["maxItems"]) == (5, 16)


# --- a pipeline built in code meets the same rules ----------------------------------------------


def _image(hostname: str, **more: Any) -> dict[str, Any]:
    return {"hostname": hostname, "image": IMAGE, **more}


def _refusal(data: dict[str, Any]) -> list[tuple[tuple[str | int, ...], str]]:
    with pytest.raises(ValidationError) as caught:
        Pipeline.model_validate(data)
    return [(tuple(e["loc"]), e["msg"]) for e in caught.value.errors()]


@pytest.mark.parametrize(
    ("data", "where", "fragment"),
    [
        (
            {"name": "x", "mode": "Direct", "containers": [_image("a")]},
            ("mode",),
            "Direct needs 2 to 15 containers",
        ),
        (
            {
                "name": "x",
                "containers": [_image("a"), _image("b"), _image("c")],
                "async": {"output_path": "s3://bucket/out"},
            },
            ("async",),
            "got async with 3 containers (Serial)",
        ),
        (
            {
                "name": "x",
                "containers": [
                    _image("a", multi_model=True, model_data="s3://bucket/a/"),
                    _image("b", multi_model=True, model_data="s3://bucket/b/"),
                ],
            },
            ("containers", 1, "multi_model"),
            "got 2 multi-model containers",
        ),
        (
            {
                "name": "x",
                "containers": [
                    _image("a", environment={f"K{i}": "v" * 1000 for i in range(20)}),
                    _image("b", environment={f"K{i}": "v" * 1000 for i in range(20)}),
                ],
            },
            ("containers",),
            "SageMaker allows at most 32768 per model",
        ),
    ],
    ids=["direct-one-container", "async-three-containers", "two-multi-model", "env-over-32kb"],
)
def test_model_validate_refuses_what_validate_refuses(
    data: dict[str, Any], where: tuple[str | int, ...], fragment: str
) -> None:
    ((loc, message),) = _refusal(data)
    assert loc == where
    assert fragment in message, message


@pytest.mark.parametrize("case", ["rules-in-file-order", "containers-17-with-bad-items"])
def test_code_and_file_get_the_same_rule_messages(case: str) -> None:
    """The loader only adds FILE:LINE to what the models' rules say."""
    path = BAD_SPECS / f"{case}.yaml"
    with pytest.raises(SpecError) as from_file:
        load_pipeline(path)
    with pytest.raises(ValidationError) as in_code:
        Pipeline.model_validate(YAML(typ="safe").load(path), context={"source": path})
    rules = [e["msg"] for e in in_code.value.errors() if e["type"] == "spec_rule"]
    assert rules
    assert set(rules) <= {i.message for i in from_file.value.issues}


def test_a_list_over_its_limit_still_reports_its_items_in_code() -> None:
    containers = [_image(f"c{i}") for i in range(17)]
    containers[4] = _image("a_b")
    containers[9] = _image("c9", imagee="x")
    containers[12] = _image("c3")
    found = _refusal({"name": "x", "containers": containers})
    assert [loc for loc, _ in found] == [
        ("containers", 4, "hostname"),
        ("containers", 9, "imagee"),
        ("containers",),
        ("containers", 12, "hostname"),
    ]
    assert "got 17 containers" in found[2][1]
    assert "got 'c3' again (also containers[3])" in found[3][1]


def test_relative_paths_resolve_against_the_source_or_the_working_directory(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = {"name": "x", "containers": [{"hostname": "a", "build": "containers/a"}]}
    source = project / "pipeline.yaml"
    p = Pipeline.model_validate(data, context={"source": source})
    assert p.source == source.resolve()
    assert p.state_dir == project.resolve() / ".composer" / "x"
    monkeypatch.chdir(project.parent)
    assert _refusal(data) == [
        (
            ("containers", 0, "build"),
            "got 'containers/a', which is not a folder "
            f"(looked at {project.parent.resolve() / 'containers' / 'a'})",
        )
    ]
    monkeypatch.chdir(project)
    assert Pipeline.model_validate(data).base_dir == project


def test_batch_transform_is_refused_for_direct_pipelines_only() -> None:
    direct = Pipeline.model_validate(
        {"name": "x", "mode": "Direct", "containers": [_image("a"), _image("b")]}
    )
    with pytest.raises(UsageError, match="real time only"):
        direct.check_batch_transform()
    Pipeline.model_validate({"name": "x", "containers": [_image("a")]}).check_batch_transform()


# --- multi-model containers ---------------------------------------------------------------------


def _multi(project: Path, model_data: str) -> Path:
    (project / "models" / "v2").mkdir(parents=True, exist_ok=True)
    (project / "models" / "en.tar.gz").write_bytes(b"")
    (project / "models" / "v2" / "de.tar.gz").write_bytes(b"")
    return write(
        project,
        f"""
        name: mm
        containers:
          - hostname: a
            build: containers/a
            multi_model: true
            model_data: {model_data}
          - hostname: b
            build: containers/b
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


def test_a_plain_container_takes_async_and_100_entries(project: Path) -> None:
    """What bad_specs/multi-async.yaml and multi-env-100-entries.yaml refuse with multi_model."""
    entries = "".join(f"      K{i}: v\n" for i in range(100))
    text = (
        "name: solo\ncontainers:\n  - hostname: a\n    build: containers/a\n"
        f"    model_data: model.tar.gz\n    environment:\n{entries}"
        "async:\n  output_path: s3://bucket/out\n"
    )
    p = load_pipeline(write(project, text))
    assert p.async_inference is not None
    assert len(p.containers[0].env) == 100


def test_a_reader_that_stops_early_ends_the_command_quietly() -> None:
    """`sm-compose schema | head -0`: no 'internal error', no traceback, SIGPIPE's status."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "composer", "schema"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    # Gone before the command writes (it is still importing); the schema has nowhere to go.
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=30) == 141
    assert err == ""


def test_batching_becomes_the_runtime_variables_in_the_environment() -> None:
    direct = load_pipeline(REPO / "pipelines" / "nlp-direct.yaml")
    spacy, textblob = direct.container("spacy"), direct.container("textblob")
    assert spacy.batching is not None
    assert spacy.model_env == {"COMPOSER_MAX_BATCH_SIZE": "32", "COMPOSER_MAX_BATCH_DELAY_MS": "0"}
    assert textblob.batching is None and textblob.model_env == {}
    doc = {"name": "x", "containers": [{"hostname": "a", "image": "i", "batching": {}}]}
    defaults = Pipeline.model_validate(doc).containers[0].model_env
    assert defaults == {"COMPOSER_MAX_BATCH_SIZE": "32", "COMPOSER_MAX_BATCH_DELAY_MS": "0"}
