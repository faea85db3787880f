"""The NLP examples as real images, built and served as SageMaker runs them, once per engine.

`sm-compose up --engine ENGINE` (Podman, then Docker: the `engine` fixture of tests/conftest.py
is parametrized) is started as a user starts it, and answered through the gateway by an
unmodified boto3 client, with the process runner's assertions (tests/e2e/test_up_nlp.py). Then
what goes wrong: a container killed with SIGKILL, an `up` killed with SIGKILL, an image without
the SageMaker label, a Docker daemon that does not answer.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from composer.render.dockerfile import BIND_TO_PORT_LABEL
from composer.runners.engine import Engine
from composer.runners.oci import ENDPOINT_LABEL, HOSTNAME_LABEL, OWNER_LABEL, STATE_LABEL, state_id
from composer.spec import load_pipeline
from tests.engines import BASE_IMAGE, ENGINE_ENV, cli

from .conftest import (
    READY_TIMEOUT,
    Up,
    kill_tree,
    nlp_pipeline,
    running_up,
    start_up,
    write_pipeline,
)
from .test_exposure import assert_only_loopback, container_ports, descendants, listening

pytestmark = [pytest.mark.engine, pytest.mark.slow, pytest.mark.e2e]

APPLE = "Apple is looking at buying U.K. startup for $1 billion."


def _refs(pipeline: Path, engine: Engine) -> dict[str, str]:
    """hostname -> image reference, from a no-op `build` (everything is built already)."""
    proc = cli("build", str(pipeline), "--engine", engine.name)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert all("(up to date; SageMaker labels present)" in line for line in lines), lines
    return {line.split(":")[0]: line.split()[1] for line in lines}


def test_both_examples_carry_the_label_and_are_not_rebuilt(
    nlp_images: Path, engine: Engine, tmp_path: Path
) -> None:
    direct = _refs(nlp_images, engine)
    assert set(direct) == {"spacy", "textblob"}
    for hostname, ref in direct.items():
        assert ref.startswith(f"sagemaker-composer-{hostname}:")
        assert engine.inspect_labels(ref)[BIND_TO_PORT_LABEL] == "true"
    assert _refs(nlp_pipeline(tmp_path, "Serial"), engine) == direct  # same contexts and images


def test_an_explicit_tag_builds_from_the_layer_cache(nlp_images: Path, engine: Engine) -> None:
    tag = f"explicit-{uuid.uuid4().hex[:8]}"
    proc = cli("build", str(nlp_images), "--engine", engine.name, "--tag", tag)
    assert proc.returncode == 0, proc.stderr
    try:
        for hostname in ("spacy", "textblob"):
            ref = f"sagemaker-composer-{hostname}:{tag}"
            assert f"{hostname}: {ref} (built; SageMaker labels present)" in proc.stdout
            assert engine.inspect_labels(ref)[BIND_TO_PORT_LABEL] == "true"
    finally:
        for hostname in ("spacy", "textblob"):
            engine.remove_image(f"sagemaker-composer-{hostname}:{tag}")


def test_a_base_image_that_cannot_be_had_is_named(engine: Engine, tmp_path: Path) -> None:
    pipeline = nlp_pipeline(tmp_path, "Direct")
    missing = "localhost/composer-no-such-base:1"
    env = {"COMPOSER_BASE_IMAGE": missing}
    proc = cli("build", str(pipeline), "--engine", engine.name, env=env)
    assert proc.returncode == 1
    assert f"the base image '{missing}' is not in the engine's store" in proc.stderr
    assert "--base-image or $COMPOSER_BASE_IMAGE" in proc.stderr
    assert f"{engine.name} build" in proc.stderr and "Traceback" not in proc.stderr


def _invoke(up: Up, body: dict[str, Any], **kwargs: Any) -> Any:
    client: Any = up.client()
    response = client.invoke_endpoint(
        EndpointName=up.name,
        Body=json.dumps(body).encode(),
        ContentType="application/json",
        **kwargs,
    )
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 200
    return json.loads(response["Body"].read())


def _containers(engine: Engine, endpoint: str) -> list[str]:
    return engine.containers_labelled(ENDPOINT_LABEL, endpoint)


def _pid(engine: Engine, name: str) -> int:
    """The host pid of a container's first process."""
    pid = engine.container_pid(name)
    assert pid is not None, f"{name} is not running"
    return pid


@contextlib.contextmanager
def _up_engine(pipeline: Path, engine: Engine, leave: set[str] | None = None) -> Iterator[Up]:
    """`up --engine ENGINE` until the block ends; then it has stopped cleanly and no container
    of it is left."""
    with running_up(pipeline, "--engine", engine.name, env=ENGINE_ENV) as up:
        yield up
    assert up.proc.returncode == 0, "\n".join(up.lines[-40:])
    left = set(_containers(engine, up.name)) - (leave or set())
    assert not left, "containers are removed on exit"


def _assert_entities(doc: dict[str, Any]) -> None:
    entities = {(e["text"], e["label"]) for e in doc["entities"]}
    assert {("Apple", "ORG"), ("U.K.", "GPE"), ("$1 billion", "MONEY")} <= entities


def test_up_serves_direct(nlp_images: Path, engine: Engine) -> None:
    with _up_engine(nlp_images, engine) as up:
        _assert_entities(_invoke(up, {"text": APPLE}, TargetContainerHostname="spacy"))
        good = _invoke(up, {"text": "What a lovely day"}, TargetContainerHostname="textblob")
        bad = _invoke(up, {"text": "What an awful day"}, TargetContainerHostname="textblob")
        assert good["polarity"] > 0 > bad["polarity"]
        running = _containers(engine, "nlp-direct")
        assert len(running) == 2
        # Host network: each container's nginx, like the gateway, listens on loopback only.
        pids = [_pid(engine, name) for name in running]
        found = listening(descendants([up.proc.pid, *pids]))
        assert {("127.0.0.1", port) for port in container_ports(up)} <= found
        assert_only_loopback(found, besides=set())
        # Logs come through with hostname prefixes, as the process runner prints them.
        assert any(line.startswith("spacy ") and " | " in line for line in up.lines)


def test_up_serves_serial(nlp_images: Path, engine: Engine, tmp_path: Path) -> None:
    with _up_engine(nlp_pipeline(tmp_path, "Serial"), engine) as up:
        doc = _invoke(up, {"text": "I love this phone. The battery is terrible."})
        per = doc["sentiment"]["sentences"]
        assert [s["text"] for s in per] == ["I love this phone.", "The battery is terrible."]
        assert per[0]["polarity"] > 0 > per[1]["polarity"]
        _assert_entities(_invoke(up, {"text": APPLE}))


def _dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def _idle(engine: Engine, name: str, image: str, labels: dict[str, str]) -> None:
    engine.run(name, image, entrypoint="/bin/sleep", args=["600"], labels=labels)


def test_image_containers_run_and_crash_leftovers_are_removed(
    nlp_images: Path, engine: Engine, tmp_path: Path
) -> None:
    """An `image:` container runs as it is; a container a killed `up` left behind is removed."""
    refs = _refs(nlp_images, engine)
    head = nlp_images.read_text().partition("  - hostname: textblob")[0]
    pipeline = write_pipeline(
        tmp_path, f"{head}  - hostname: textblob\n    image: {refs['textblob']}\n"
    )
    labels = {ENDPOINT_LABEL: "nlp-direct", STATE_LABEL: state_id(load_pipeline(pipeline))}
    leftover, alive = f"sm-compose-leftover-{tmp_path.name}", f"sm-compose-alive-{tmp_path.name}"
    _idle(engine, leftover, refs["textblob"], {**labels, OWNER_LABEL: str(_dead_pid())})
    _idle(engine, alive, refs["textblob"], {**labels, OWNER_LABEL: "1"})  # pid 1 lives
    try:
        with _up_engine(pipeline, engine, leave={alive}) as up:
            assert not engine.container_exists(leftover)
            assert any(f"removing leftover container {leftover}" in x for x in up.lines)
            assert engine.container_status(alive) == "running", "a live owner's container stays"
            _assert_entities(_invoke(up, {"text": APPLE}, TargetContainerHostname="spacy"))
            good = _invoke(up, {"text": "What a lovely day"}, TargetContainerHostname="textblob")
            assert good["polarity"] > 0
    finally:
        engine.rm(leftover, force=True)
        engine.rm(alive, force=True)


def test_up_serves_a_multi_model_container(engine: Engine, tmp_path: Path) -> None:
    """The image gets both labels; models are extracted on the host and loaded from the mount."""
    import io
    import tarfile

    models = tmp_path / "models"
    models.mkdir()
    for name in ("alpha", "beta"):
        data = json.dumps({"name": name}).encode()
        with tarfile.open(models / f"{name}.tar.gz", "w:gz") as tar:
            info = tarfile.TarInfo("model.json")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    fixture = Path(__file__).resolve().parents[1] / "integration" / "fixtures" / "mme"
    name = f"mme-{engine.name}"
    pipeline = write_pipeline(
        tmp_path,
        f"name: {name}\ncontainers:\n  - hostname: models\n    build: {fixture}\n"
        f"    multi_model: true\n    model_data: {models}\n",
    )
    built = cli("build", str(pipeline), "--engine", engine.name)
    assert built.returncode == 0, built.stderr
    [ref] = _refs(pipeline, engine).values()
    labels = engine.inspect_labels(ref)
    assert labels[BIND_TO_PORT_LABEL] == "true"
    assert labels["com.amazonaws.sagemaker.capabilities.multi-models"] == "true"
    with _up_engine(pipeline, engine) as up:
        client = up.client()
        for model in ("alpha", "beta", "alpha"):
            r = client.invoke_endpoint(  # type: ignore[attr-defined]
                EndpointName=name, TargetModel=f"{model}.tar.gz", Body=b"{}"
            )
            answer = json.loads(r["Body"].read())
            assert answer["model"] == model and answer["loads"] == 1


def _hostname_of(engine: Engine, hostname: str, endpoint: str) -> str:
    [name] = [
        n
        for n in _containers(engine, endpoint)
        if (engine.container_labels(n) or {}).get(HOSTNAME_LABEL) == hostname
    ]
    return name


def test_a_container_killed_with_sigkill_is_restarted(nlp_images: Path, engine: Engine) -> None:
    """SIGKILL to a container's first process: the engine's `run` ends, the supervisor restarts
    it under the same name (replacing what is left), and it answers again."""
    with _up_engine(nlp_images, engine) as up:
        name = _hostname_of(engine, "textblob", "nlp-direct")
        killed = _pid(engine, name)
        os.kill(killed, signal.SIGKILL)
        up.wait_for("textblob exited with status 137; restarting", 60)
        up.wait_for("textblob is up again (restart 1)", READY_TIMEOUT)
        assert _hostname_of(engine, "textblob", "nlp-direct") == name
        assert _pid(engine, name) != killed
        good = _invoke(up, {"text": "What a lovely day"}, TargetContainerHostname="textblob")
        assert good["polarity"] > 0
        _assert_entities(_invoke(up, {"text": APPLE}, TargetContainerHostname="spacy"))


def test_a_killed_up_leaves_containers_that_the_next_up_removes(
    nlp_images: Path, engine: Engine
) -> None:
    """`up` and its engine processes killed with SIGKILL leave running containers; the next
    `up` of the folder removes them. (Podman's `run --rm` also removes its container itself when
    only `up` dies and the container then writes to the broken pipe; Docker's does not.)"""
    first = start_up(nlp_images, "--engine", engine.name, env=ENGINE_ENV)
    try:
        first.wait_for("ready at", READY_TIMEOUT)
        left = set(_containers(engine, "nlp-direct"))
        assert len(left) == 2
        kill_tree(first)
        assert set(_containers(engine, "nlp-direct")) == left, "SIGKILL leaves them running"
        with _up_engine(nlp_images, engine) as up:
            for name in left:
                removed = f"removing leftover container {name}"
                assert any(removed in x for x in up.lines), "\n".join(up.lines)
                assert not engine.container_exists(name)
            _assert_entities(_invoke(up, {"text": APPLE}, TargetContainerHostname="spacy"))
    finally:
        if first.proc.poll() is None:
            first.proc.kill()


def test_an_image_without_the_sagemaker_label_is_refused(
    nlp_images: Path, engine: Engine, tmp_path: Path
) -> None:
    head = nlp_images.read_text().partition("  - hostname: textblob")[0]
    pipeline = write_pipeline(tmp_path, f"{head}  - hostname: textblob\n    image: {BASE_IMAGE}\n")
    up = start_up(pipeline, "--engine", engine.name, env=ENGINE_ENV)
    code = up.stop(signal.SIGCONT, timeout=READY_TIMEOUT)  # SIGCONT: let it end by itself
    output = "\n".join(up.lines)
    assert code == 1, output
    assert f"{BASE_IMAGE}: got labels" in output
    assert f"SageMaker needs {BIND_TO_PORT_LABEL}=true" in output
    assert "Traceback" not in output
    assert not _containers(engine, "nlp-direct")


def test_transform_runs_the_images(nlp_images: Path, engine: Engine, tmp_path: Path) -> None:
    """`transform --engine`: the Serial pipeline's images over a JSON Lines file."""
    pipeline = nlp_pipeline(tmp_path, "Serial")
    texts = [APPLE, "What a lovely day", "What an awful day"]
    src = tmp_path / "in"
    src.mkdir()
    (src / "texts.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    proc = cli(
        "transform",
        str(pipeline),
        "--input",
        str(src),
        "--output",
        str(tmp_path / "out"),
        "--engine",
        engine.name,
        "--content-type",
        "application/jsonlines",
        "--split-type",
        "Line",
        "--assemble-with",
        "Line",
    )
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(x) for x in (tmp_path / "out" / "texts.jsonl.out").read_text().splitlines()]
    assert [x["text"] for x in lines] == texts
    _assert_entities(lines[0])
    assert lines[1]["sentiment"]["polarity"] > 0 > lines[2]["sentiment"]["polarity"]
    assert not _containers(engine, "nlp-serial"), "transform removes its containers"


def test_docker_without_a_daemon_is_one_clear_line(tmp_path: Path) -> None:
    """Every command that takes --engine docker: exit 2, one line naming DOCKER_HOST."""
    if shutil.which("docker") is None:
        pytest.skip("no docker client on PATH (scripts/setup-docker.sh installs one)")
    pipeline = nlp_pipeline(tmp_path, "Serial")
    src = tmp_path / "in.jsonl"
    src.write_text('{"text": "hello"}\n')
    socket = f"unix://{tmp_path}/no-daemon.sock"
    commands = [
        ["build", str(pipeline)],
        ["up", str(pipeline), "--port", "0"],
        ["push", str(pipeline), "--registry", "127.0.0.1:1/team"],
        ["transform", str(pipeline), "--input", str(src), "--output", str(tmp_path / "out")],
    ]
    for command in commands:
        proc = cli(*command, "--engine", "docker", env={"DOCKER_HOST": socket})
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2, (command, proc.stderr)
        assert len(lines) == 1, (command, proc.stderr)
        assert f"DOCKER_HOST={socket}" in lines[0] and "scripts/setup-docker.sh" in lines[0]
        assert "Traceback" not in proc.stderr
