"""`up --watch` and `local --watch` as a user meets them: they save a change while requests
keep coming, and the endpoint answers with the new code (or requirements, or pipeline) without
one request failing.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from composer.runners.engine import Engine
from tests.engines import ENGINE_ENV

from .conftest import (
    REPO,
    Up,
    built_images,
    invoking_meanwhile,
    running_local,
    running_up,
    wait_status,
    write_pipeline,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

RELOAD_TIMEOUT = 120
#: A requirement change builds an environment (from uv's cache, where six already is).
REBUILD_TIMEOUT = 600

#: containers/minimal's handler, answering what a change can change: its code (GREETING), its
#: environment (the pipeline's), its requirements (whether six is installed), and the safe
#: port range the platform gave it.
HANDLER = """
import importlib.util
import json
import os
import time

GREETING = {greeting!r}
{extra}

def model_fn(model_dir):
    return {{}}


def input_fn(body, content_type):
    return json.loads(body)


def predict_fn(data, model):
    time.sleep(data.get("sleep", 0))
    return {{
        "greeting": GREETING,
        "suffix": os.environ.get("SUFFIX", ""),
        "six": importlib.util.find_spec("six") is not None,
        "ports": os.environ["SAGEMAKER_SAFE_PORT_RANGE"],
    }}
"""


def write_handler(folder: Path, greeting: str, extra: str = "") -> None:
    (folder / "inference.py").write_text(HANDLER.format(greeting=greeting, extra=extra))


def project(tmp_path: Path, containers: dict[str, dict[str, Any]], mode: str = "Direct") -> Path:
    """A pipeline of copies of containers/minimal (hostname -> its spec fields besides build)
    under tmp_path, each greeting with its hostname."""
    for hostname in containers:
        folder = tmp_path / hostname
        folder.mkdir()
        (folder / "requirements.txt").write_text(
            (REPO / "containers" / "minimal" / "requirements.txt").read_text()
        )
        write_handler(folder, f"hello from {hostname}")
    spec = {
        "name": "watched",
        "mode": mode,
        "containers": [{"hostname": h, "build": f"./{h}", **f} for h, f in containers.items()],
    }
    return write_pipeline(tmp_path, spec)


@pytest.fixture
def watched(tmp_path: Path) -> Iterator[Up]:
    """`up --watch` of two containers, greeter and other, ready and watching."""
    pipeline = project(tmp_path, {"greeter": {}, "other": {}})
    with running_up(pipeline, "--watch") as up:
        up.wait_for("sm-compose: watching", 60)
        yield up


def ask(
    up: Up, hostname: str = "greeter", client: Any = None, body: bytes = b"{}"
) -> dict[str, Any]:
    """An invocation of `up.name` (for `local`, the endpoint the test created)."""
    answer = (client or up.client()).invoke_endpoint(
        EndpointName=up.name,
        ContentType="application/json",
        TargetContainerHostname=hostname,
        Body=body,
    )
    return dict(json.loads(answer["Body"].read()))


def loaded(
    up: Up, hostname: str = "greeter"
) -> tuple[contextlib.AbstractContextManager[list[BaseException]], list[dict[str, Any]]]:
    """`invoking_meanwhile` of invocations of `hostname` with one client, their answers kept."""
    client = up.client()
    answers: list[dict[str, Any]] = []
    return invoking_meanwhile(lambda: answers.append(ask(up, hostname, client))), answers


def reload_lines(up: Up) -> list[str]:
    return [line for line in up.lines if line.startswith("sm-compose: reload")]


def starts(up: Up, hostname: str) -> list[str]:
    """The lines saying a container of that hostname started (its URL and log file)."""
    return [line for line in up.lines if line.split()[:1] == [hostname] and "(log " in line]


def test_a_burst_of_code_saves_reloads_that_container_once_and_no_request_fails(
    watched: Up, tmp_path: Path
) -> None:
    assert ask(watched)["greeting"] == "hello from greeter"
    started_other = starts(watched, "other")
    meanwhile, answers = loaded(watched)
    with meanwhile as failures:
        for n in range(5):  # an editor's burst: several saves within a fraction of a second
            write_handler(tmp_path / "greeter", f"hello again {n}")
            time.sleep(0.05)
        line = watched.wait_for("sm-compose: reloaded greeter (code)", RELOAD_TIMEOUT)
        time.sleep(1.0)  # requests to the new process, while the old one stops
    assert failures == []
    assert answers and answers[-1]["greeting"] == "hello again 4"
    assert "traffic switched after" in line
    time.sleep(2.0)  # no second reload follows the burst
    assert len(reload_lines(watched)) == 1, reload_lines(watched)
    assert starts(watched, "other") == started_other and len(starts(watched, "greeter")) == 2
    assert ask(watched, "other")["greeting"] == "hello from other"
    described = watched.sagemaker().describe_endpoint(EndpointName=watched.name)
    assert described["LastModifiedTime"] > described["CreationTime"]  # the reload


def test_a_reloaded_container_keeps_its_port_range_and_log_prefix_width(
    watched: Up, tmp_path: Path
) -> None:
    """`other`, the second container, reloaded alone: its SAGEMAKER_SAFE_PORT_RANGE is still
    the second one (not the first's, which greeter has), and its log lines are still padded to
    the longest hostname of the pipeline."""
    assert ask(watched, "other")["ports"] == "22000-22999"
    write_handler(tmp_path / "other", "hello again")
    watched.wait_for("sm-compose: reloaded other (code)", RELOAD_TIMEOUT)
    assert ask(watched, "other") == {
        "greeting": "hello again",
        "suffix": "",
        "six": False,
        "ports": "22000-22999",
    }
    assert ask(watched)["ports"] == "21000-21999"
    prefixes = {line.split(" |")[0] for line in watched.lines if line.startswith("other ")}
    prefixes -= {line for line in watched.lines if "(log " in line}  # start lines: no " |"
    assert prefixes == {"other  "}, prefixes  # padded to len("greeter"), old and new process


def test_a_requirements_change_rebuilds_the_environment_and_swaps(
    watched: Up, tmp_path: Path
) -> None:
    assert ask(watched)["six"] is False
    pin_six(watched, tmp_path, "sm-compose: reloaded greeter (requirements)")


def pin_six(up: Up, tmp_path: Path, reloaded: str) -> None:
    """A pin added to greeter's requirements.txt while invocations keep coming: `reloaded` is
    printed, greeter answers from its new environment (six installed), other from its own, and
    no request failed."""
    meanwhile, answers = loaded(up)
    with meanwhile as failures:
        requirements = tmp_path / "greeter" / "requirements.txt"
        requirements.write_text(requirements.read_text() + "six==1.17.0\n")
        up.wait_for(reloaded, REBUILD_TIMEOUT)
        time.sleep(1.0)
    assert failures == []
    assert answers[-1]["six"] is True
    assert ask(up, "other")["six"] is False


def test_a_pipeline_change_is_validated_then_applied_blue_green(
    watched: Up, tmp_path: Path
) -> None:
    pipeline = tmp_path / "pipeline.yaml"
    spec = json.loads(pipeline.read_text())
    broken = {**spec, "containers": [{**spec["containers"][0], "bogus": 1}, spec["containers"][1]]}
    with loaded(watched)[0] as failures:
        write_pipeline(tmp_path, broken)
        watched.wait_for("not applied; the endpoint serves as before", RELOAD_TIMEOUT)
    assert failures == []
    validated = subprocess.run(
        [sys.executable, "-m", "composer", "validate", str(pipeline)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert validated.returncode == 2 and validated.stderr.strip()
    for error in validated.stderr.strip().splitlines():
        assert error in watched.lines, error
    assert ask(watched)["suffix"] == ""

    (tmp_path / "third").mkdir()
    (tmp_path / "third" / "requirements.txt").write_text("")
    write_handler(tmp_path / "third", "hello from third")
    spec["containers"][0]["environment"] = {"SUFFIX": "!"}
    spec["containers"][1:] = [{"hostname": "third", "build": "./third"}]  # other removed
    meanwhile, answers = loaded(watched)
    with meanwhile as failures:
        write_pipeline(tmp_path, spec)
        line = watched.wait_for("sm-compose: reloaded greeter (pipeline)", RELOAD_TIMEOUT)
        time.sleep(1.0)
    assert failures == []
    assert "third (pipeline: added)" in line and "other (pipeline: removed)" in line, line
    assert answers[-1]["suffix"] == "!"
    assert ask(watched, "third")["greeting"] == "hello from third"
    with pytest.raises(Exception, match="other"):
        ask(watched, "other")


def test_a_broken_change_keeps_the_old_container_serving_and_a_fix_reloads(
    watched: Up, tmp_path: Path
) -> None:
    meanwhile, answers = loaded(watched)
    with meanwhile as failures:
        write_handler(tmp_path / "greeter", "never served", extra="raise RuntimeError('planted')")
        failed = watched.wait_for("sm-compose: reload of greeter (code) failed", RELOAD_TIMEOUT)
        time.sleep(1.0)
    assert failures == []
    assert {a["greeting"] for a in answers} == {"hello from greeter"}
    after = watched.lines[watched.lines.index(failed.rstrip("\n")) :]
    assert any(line.startswith("  ") and "planted" in line for line in after), after  # its log

    write_handler(tmp_path / "greeter", "fixed")
    watched.wait_for("sm-compose: reloaded greeter (code)", RELOAD_TIMEOUT)
    assert ask(watched)["greeting"] == "fixed"


def test_a_request_in_flight_during_a_reload_finishes_on_the_old_process(
    watched: Up, tmp_path: Path
) -> None:
    slow: list[dict[str, Any]] = []
    worker = threading.Thread(target=lambda: slow.append(ask(watched, body=b'{"sleep": 5}')))
    worker.start()
    time.sleep(0.5)
    write_handler(tmp_path / "greeter", "new code")
    watched.wait_for("sm-compose: reloaded greeter (code)", RELOAD_TIMEOUT)
    assert ask(watched)["greeting"] == "new code"  # the new process, while the old one answers
    worker.join(timeout=60)
    assert [a["greeting"] for a in slow] == ["hello from greeter"]


@pytest.mark.engine
def test_with_an_engine_a_code_change_builds_a_new_image_and_container(
    engine: Engine, tmp_path: Path
) -> None:
    pipeline = project(tmp_path, {"greeter": {}}, mode="Serial")
    args = ("--watch", "--engine", engine.name)
    with running_up(pipeline, *args, env=ENGINE_ENV) as up:
        up.wait_for("sm-compose: watching", 60)
        client = up.client()

        def greeting() -> str:
            answer = client.invoke_endpoint(
                EndpointName=up.name, ContentType="application/json", Body=b"{}"
            )
            return str(json.loads(answer["Body"].read())["greeting"])

        assert greeting() == "hello from greeter"
        answers: list[str] = []
        with invoking_meanwhile(lambda: answers.append(greeting())) as failures:
            write_handler(tmp_path / "greeter", "hello from a new image")
            up.wait_for("sm-compose: reloaded greeter (code)", 600)
            time.sleep(1.0)
        assert failures == []
        assert answers[-1] == "hello from a new image"
        assert len(set(starts(up, "greeter"))) == 2  # a second container, on a port of its own


def test_up_watch_also_reloads_an_endpoint_created_beside_it_through_the_api(
    watched: Up, tmp_path: Path
) -> None:
    (tmp_path / "beside").mkdir()
    images = built_images(project(tmp_path / "beside", {"greeter": {}, "other": {}}))
    sm = watched.sagemaker()
    containers = [{"ContainerHostname": h, "Image": images[h]} for h in ("greeter", "other")]
    sm.create_model(
        ModelName="beside", Containers=containers, InferenceExecutionConfig={"Mode": "Direct"}
    )
    variant = {"VariantName": "v", "ModelName": "beside", "InitialInstanceCount": 1}
    sm.create_endpoint_config(EndpointConfigName="beside", ProductionVariants=[variant])
    sm.create_endpoint(EndpointName="beside", EndpointConfigName="beside")
    assert wait_status(sm, "beside")["EndpointStatus"] == "InService"
    watched.wait_for("sm-compose: watching 2 build folders (endpoint beside)", 60)
    beside = dataclasses.replace(watched, name="beside")
    meanwhile, answers = loaded(beside)
    with meanwhile as failures:
        write_handler(tmp_path / "beside" / "greeter", "hello beside")
        line = watched.wait_for("sm-compose: reloaded beside/greeter (code)", RELOAD_TIMEOUT)
        time.sleep(1.0)
    assert failures == [] and answers[-1]["greeting"] == "hello beside", line
    assert ask(watched)["greeting"] == "hello from greeter"  # up's own endpoint: not its folder
    assert [r for r in reload_lines(watched) if not r.startswith(line.rstrip())] == []


@contextlib.contextmanager
def local_endpoint(tmp_path: Path, instances: int) -> Iterator[Up]:
    """`local --watch`, and an endpoint `watched` created through boto3 from the images
    `sm-compose build` made of two containers (greeter and other, Direct), with `instances`
    copies; ready, and its build folders watched. `Up.name` is that endpoint."""
    images = built_images(project(tmp_path, {"greeter": {}, "other": {}}))
    with running_local("--watch") as local:
        local.wait_for("sm-compose: watching no build folders yet", 60)
        sm = local.sagemaker()
        containers = [{"ContainerHostname": h, "Image": images[h]} for h in ("greeter", "other")]
        sm.create_model(
            ModelName="watched",
            Containers=containers,
            InferenceExecutionConfig={"Mode": "Direct"},
        )
        variant = {"VariantName": "v", "ModelName": "watched", "InitialInstanceCount": instances}
        sm.create_endpoint_config(EndpointConfigName="watched", ProductionVariants=[variant])
        sm.create_endpoint(EndpointName="watched", EndpointConfigName="watched")
        assert wait_status(sm, "watched")["EndpointStatus"] == "InService"
        local.wait_for("sm-compose: watching 2 build folders (endpoint watched)", 60)
        local.name = "watched"
        yield local


def test_local_watch_reloads_every_copy_of_an_api_made_endpoint_from_its_build_folder(
    tmp_path: Path,
) -> None:
    with local_endpoint(tmp_path, instances=2) as local:
        sm = local.sagemaker()
        created = sm.describe_endpoint(EndpointName="watched")
        assert ask(local)["greeting"] == "hello from greeter"
        meanwhile, answers = loaded(local)
        with meanwhile as failures:
            for n in range(5):  # an editor's burst of saves: one reload
                write_handler(tmp_path / "greeter", f"hello again {n}")
                time.sleep(0.05)
            line = local.wait_for("sm-compose: reloaded watched/greeter (code)", RELOAD_TIMEOUT)
            time.sleep(1.0)
        assert failures == []
        assert answers and answers[-1]["greeting"] == "hello again 4"
        assert "traffic switched after" in line and line.rstrip().endswith("(2 copies)"), line
        time.sleep(2.0)
        assert len(reload_lines(local)) == 1, reload_lines(local)
        assert {ask(local)["greeting"] for _ in range(4)} == {"hello again 4"}  # both copies
        assert ask(local, "other")["greeting"] == "hello from other"
        described = sm.describe_endpoint(EndpointName="watched")
        assert described["EndpointStatus"] == "InService"
        assert described["LastModifiedTime"] > created["LastModifiedTime"]
        assert described["ProductionVariants"][0]["CurrentInstanceCount"] == 2

        sm.delete_endpoint(EndpointName="watched")  # no longer watched
        local.wait_for("sm-compose: watching no build folders yet", 60)
        write_handler(tmp_path / "greeter", "nobody serves this")
        time.sleep(2.0)
        assert len(reload_lines(local)) == 1, reload_lines(local)


def test_local_watch_keeps_serving_through_a_broken_change_and_rebuilds_for_requirements(
    tmp_path: Path,
) -> None:
    with local_endpoint(tmp_path, instances=1) as local:
        meanwhile, answers = loaded(local)
        with meanwhile as failures:
            broken = "raise RuntimeError('planted')"
            write_handler(tmp_path / "greeter", "never served", extra=broken)
            failed = local.wait_for(
                "sm-compose: reload of watched/greeter (code) failed", RELOAD_TIMEOUT
            )
            time.sleep(1.0)
        assert failures == []
        assert {a["greeting"] for a in answers} == {"hello from greeter"}
        after = local.lines[local.lines.index(failed.rstrip("\n")) :]
        assert any(line.startswith("  ") and "planted" in line for line in after), after
        described = local.sagemaker().describe_endpoint(EndpointName="watched")
        assert described["EndpointStatus"] == "InService"
        assert "planted" in described["FailureReason"]

        write_handler(tmp_path / "greeter", "fixed")
        local.wait_for("sm-compose: reloaded watched/greeter (code)", RELOAD_TIMEOUT)
        assert ask(local)["greeting"] == "fixed"
        assert "FailureReason" not in local.sagemaker().describe_endpoint(EndpointName="watched")

        pin_six(local, tmp_path, "sm-compose: reloaded watched/greeter (requirements)")
