"""Build contexts: complete, deterministic, and parsed by the real parsers of their formats."""

from __future__ import annotations

import filecmp
import json
import os
import subprocess
import sys
from pathlib import Path

import crossplane
import pytest
from dockerfile_parse import DockerfileParser

from composer.render.context import context_digest, write_build
from composer.render.nginx import render_nginx_template
from composer.serving.serve import render_config
from composer.spec import load_pipeline

REPO = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).parent / "golden"


def _directives(parsed: list[dict[str, object]]) -> dict[str, list[list[str]]]:
    """Every directive anywhere in the config, by name, with its arguments."""
    found: dict[str, list[list[str]]] = {}

    def walk(block: list[dict[str, object]]) -> None:
        for d in block:
            found.setdefault(str(d["directive"]), []).append(list(d["args"]))  # type: ignore[call-overload]
            if "block" in d:
                walk(d["block"])  # type: ignore[arg-type]

    walk(parsed)
    return found


def test_nginx_template_matches_golden() -> None:
    text = render_nginx_template()
    golden = GOLDEN / "nginx.conf.template"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(text)
    assert text == golden.read_text()
    assert text == render_nginx_template(), "deterministic"


def test_the_template_is_rendered_once_per_machine_then_read_from_the_cache(
    tmp_path: Path,
) -> None:
    """A build pays nginx-config-builder's import once; later ones (and `up`) read the cache.

    Each build is its own `sm-compose build`, as a user runs them: a fresh process.
    """
    env = {**os.environ, "COMPOSER_CACHE_DIR": str(tmp_path / "cache")}
    pipeline = str(REPO / "pipelines" / "nlp-direct.yaml")

    def build(out: Path) -> None:
        argv = [sys.executable, "-m", "composer", "build", pipeline, "--out", str(out)]
        subprocess.run(argv, env=env, check=True, capture_output=True)

    build(tmp_path / "first")
    (cached,) = (tmp_path / "cache" / "nginx").iterdir()
    assert cached.read_text() == (GOLDEN / "nginx.conf.template").read_text()
    cached.write_text("# from the cache\n")  # proves the next build reads it
    build(tmp_path / "second")
    assert (tmp_path / "second" / "spacy" / "nginx.conf.template").read_text() == (
        "# from the cache\n"
    )


def test_rendered_nginx_conf_parses_and_has_what_sagemaker_needs(tmp_path: Path) -> None:
    conf = render_config(
        render_nginx_template(), host="0.0.0.0", port=8080, run_dir=tmp_path, timeout=60
    )
    assert "__" not in conf, "every placeholder is filled"
    path = tmp_path / "nginx.conf"
    path.write_text(conf)
    result = crossplane.parse(str(path), single=True, check_ctx=True, check_args=True)
    assert result["status"] == "ok", result["errors"]
    d = _directives(result["config"][0]["parsed"])
    assert d["listen"] == [["0.0.0.0:8080"]]
    assert d["client_max_body_size"] == [["6m"]]  # 6 MiB: SageMaker's full payload
    assert d["keepalive"] == [["32"]]
    assert d["server"][0] == [f"unix:{tmp_path}/gunicorn.sock", "fail_timeout=0"]
    assert d["proxy_http_version"] == [["1.1"]]
    assert d["daemon"] == [["off"]]
    assert d["proxy_read_timeout"] == [["65s"]]
    assert ["502", "=503", "@unavailable"] in d["error_page"]


def test_rendered_conf_for_ipv6_loopback(tmp_path: Path) -> None:
    conf = render_config(
        render_nginx_template(), host="::1", port=9000, run_dir=tmp_path, timeout=5
    )
    assert "listen [::1]:9000;" in conf


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("build")
    write_build(load_pipeline(REPO / "pipelines" / "nlp-serial.yaml"), out)
    return out


def test_every_build_context_is_complete(built: Path) -> None:
    for host in ("spacy", "textblob"):
        ctx = built / host
        names = {p.name for p in ctx.iterdir()}
        assert names == {
            "Dockerfile",
            "serve",
            "nginx.conf.template",
            "composer_serving",
            "code",
            "requirements.txt",
        }
        assert os.access(ctx / "serve", os.X_OK)
        assert (ctx / "code" / "inference.py").is_file()
        runtime = {p.name for p in (ctx / "composer_serving").iterdir()}
        assert {"__init__.py", "app.py", "serve.py", "wsgi.py", "errors.py"} <= runtime
        pins = [
            line
            for line in (ctx / "requirements.txt").read_text().splitlines()
            if line and not line.startswith("#")
        ]
        assert pins[:2] == ["falcon==4.4.0", "gunicorn==27.0.1"]
        assert all("==" in p for p in pins)


def test_dockerfile_has_the_sagemaker_contract(built: Path) -> None:
    parser = DockerfileParser(path=str(built / "spacy" / "Dockerfile"))
    assert parser.labels["com.amazonaws.sagemaker.capabilities.accept-bind-to-port"] == "true"
    instructions = [i["instruction"] for i in parser.structure]
    entrypoint = next(i["value"] for i in parser.structure if i["instruction"] == "ENTRYPOINT")
    assert json.loads(entrypoint) == ["/opt/venv/bin/python", "/opt/program/serve"]
    cmd = next(i["value"] for i in parser.structure if i["instruction"] == "CMD")
    assert json.loads(cmd) == ["serve"]
    assert "FROM" in instructions
    assert parser.envs["PYTHONUNBUFFERED"] == "1"
    assert "nginx" in parser.content
    assert "SECRET" not in parser.content.upper() and "AWS_" not in parser.content


def test_build_output_is_byte_identical(built: Path, tmp_path: Path) -> None:
    write_build(load_pipeline(REPO / "pipelines" / "nlp-serial.yaml"), tmp_path)
    compared = filecmp.dircmp(built, tmp_path)

    def same(c: filecmp.dircmp[str]) -> bool:
        if c.left_only or c.right_only or c.diff_files or c.funny_files:
            return False
        return all(same(sub) for sub in c.subdirs.values())

    assert same(compared)
    for host in ("spacy", "textblob"):
        assert context_digest(built / host) == context_digest(tmp_path / host)


def test_request_documents_use_the_context_tags(built: Path) -> None:
    model = json.loads((built / "sagemaker" / "create_model.json").read_text())
    tags = {c["ContainerHostname"]: c["Image"].rsplit(":", 1)[1] for c in model["Containers"]}
    for host, tag in tags.items():
        assert context_digest(built / host)[:12] == tag
    assert model["InferenceExecutionConfig"] == {"Mode": "Serial"}
    config = json.loads((built / "sagemaker" / "create_endpoint_config.json").read_text())
    endpoint = json.loads((built / "sagemaker" / "create_endpoint.json").read_text())
    assert config["ProductionVariants"][0]["ModelName"] == model["ModelName"]
    assert endpoint["EndpointConfigName"] == config["EndpointConfigName"]
