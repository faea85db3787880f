"""The NLP examples as real images: built with Podman, then served as SageMaker runs them.

`sm-compose up --engine podman` is started as a user starts it, and answered through the gateway
by an unmodified boto3 client, with the process runner's assertions (tests/e2e/test_up_nlp.py).
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from composer.render.dockerfile import BIND_TO_PORT_LABEL
from composer.runners.engine import Engine
from composer.runners.oci import ENDPOINT_LABEL, OWNER_LABEL, STATE_LABEL, state_id
from composer.spec import load_pipeline
from tests.integration.test_engine import engine as engine  # the session fixture
from tests.integration.test_push import ENV, cli
from tests.integration.test_push import nlp_images as nlp_images  # the session fixture

from .conftest import READY_TIMEOUT, Up, nlp_pipeline, start_up, write_pipeline
from .test_exposure import assert_only_loopback, container_ports, descendants, listening

pytestmark = [pytest.mark.engine, pytest.mark.slow, pytest.mark.e2e]

APPLE = "Apple is looking at buying U.K. startup for $1 billion."


def _refs(pipeline: Path) -> dict[str, str]:
    """hostname -> image reference, from a no-op `build` (everything is built already)."""
    proc = cli("build", str(pipeline), "--engine", "podman")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert all("(up to date; SageMaker labels present)" in line for line in lines), lines
    return {line.split(":")[0]: line.split()[1] for line in lines}


def test_both_examples_carry_the_label_and_are_not_rebuilt(
    nlp_images: Path, engine: Engine, tmp_path: Path
) -> None:
    direct = _refs(nlp_images)
    assert set(direct) == {"spacy", "textblob"}
    for hostname, ref in direct.items():
        assert ref.startswith(f"sagemaker-composer-{hostname}:")
        assert engine.inspect_labels(ref)[BIND_TO_PORT_LABEL] == "true"
    assert _refs(nlp_pipeline(tmp_path, "Serial")) == direct  # same contexts, same images


def test_an_explicit_tag_builds_from_the_layer_cache(nlp_images: Path, engine: Engine) -> None:
    tag = f"explicit-{uuid.uuid4().hex[:8]}"
    proc = cli("build", str(nlp_images), "--engine", "podman", "--tag", tag)
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
    proc = cli("build", str(pipeline), "--engine", "podman", env={"COMPOSER_BASE_IMAGE": missing})
    assert proc.returncode == 1
    assert f"the base image '{missing}' is not in the engine's store" in proc.stderr
    assert "--base-image or $COMPOSER_BASE_IMAGE" in proc.stderr
    assert "podman build" in proc.stderr and "Traceback" not in proc.stderr


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
    proc = subprocess.run(
        [engine.binary, "container", "inspect", "--format", "{{.State.Pid}}", name],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(proc.stdout.strip())


@contextlib.contextmanager
def _up_engine(pipeline: Path, engine: Engine, leave: set[str] | None = None) -> Iterator[Up]:
    """`up --engine podman` until the block ends; then no container of it may be left."""
    up = start_up(pipeline, "--engine", "podman", env=ENV)
    try:
        up.wait_for("ready at", READY_TIMEOUT)
        yield up
    finally:
        assert up.stop() == 0
    left = set(_containers(engine, up.name)) - (leave or set())
    assert not left, "containers are removed on exit"


def _assert_entities(doc: dict[str, Any]) -> None:
    entities = {(e["text"], e["label"]) for e in doc["entities"]}
    assert {("Apple", "ORG"), ("U.K.", "GPE"), ("$1 billion", "MONEY")} <= entities


def test_up_with_podman_serves_direct(nlp_images: Path, engine: Engine) -> None:
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


def test_up_with_podman_serves_serial(nlp_images: Path, engine: Engine, tmp_path: Path) -> None:
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
    refs = _refs(nlp_images)
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


def test_up_with_podman_serves_a_multi_model_container(engine: Engine, tmp_path: Path) -> None:
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
    pipeline = write_pipeline(
        tmp_path,
        f"name: mme-podman\ncontainers:\n  - hostname: models\n    build: {fixture}\n"
        f"    multi_model: true\n    model_data: {models}\n",
    )
    built = cli("build", str(pipeline), "--engine", "podman")
    assert built.returncode == 0, built.stderr
    [ref] = _refs(pipeline).values()
    labels = engine.inspect_labels(ref)
    assert labels[BIND_TO_PORT_LABEL] == "true"
    assert labels["com.amazonaws.sagemaker.capabilities.multi-models"] == "true"
    with _up_engine(pipeline, engine) as up:
        client = up.client()
        for name in ("alpha", "beta", "alpha"):
            r = client.invoke_endpoint(  # type: ignore[attr-defined]
                EndpointName="mme-podman", TargetModel=f"{name}.tar.gz", Body=b"{}"
            )
            answer = json.loads(r["Body"].read())
            assert answer["model"] == name and answer["loads"] == 1
