"""The engine wrapper against real Podman and a real Docker daemon: build, labels, run as
SageMaker does, stop, push, pull.

The session fixture `engine` (tests/conftest.py, helpers in tests/engines.py) is parametrized by
engine, so every test that takes it runs once per engine. Durations are printed (run with -s to
see them); none is asserted.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from composer.errors import UsageError
from composer.render.dockerfile import BIND_TO_PORT_LABEL, MULTI_MODEL_LABEL, render_dockerfile
from composer.runners.contract import free_port
from composer.runners.engine import Engine, EngineError
from tests.engines import BASE_IMAGE, local_registry

pytestmark = [pytest.mark.engine, pytest.mark.slow]

STUB_TAG = "localhost/composer-engine-test:stub"
READY_WAIT = 60.0

# A real, tiny `serve`: stdlib HTTP server on SAGEMAKER_BIND_TO_PORT that answers /ping, reports
# what it was started with, and stops cleanly on SIGTERM as SageMaker's stop expects.
STUB_SERVE = """\
#!/usr/bin/env python3
import http.server
import json
import os
import resource
import signal
import sys
import threading


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/ping":
            body = b""
        elif self.path == "/facts":
            try:
                open("/opt/ml/model/probe", "w").close()
                model_writable = True
            except OSError:
                model_writable = False
            body = json.dumps({
                "argv": sys.argv[1:],
                "model": sorted(os.listdir("/opt/ml/model")),
                "model_writable": model_writable,
                "nofile": resource.getrlimit(resource.RLIMIT_NOFILE)[0],
                "token": os.environ.get("COMPOSER_TEST_TOKEN"),
                "six": __import__("six").__version__,
            }).encode()
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


port = int(os.environ.get("SAGEMAKER_BIND_TO_PORT", "8080"))
server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
print(f"stub serving on 127.0.0.1:{port}", flush=True)
server.serve_forever()
print("stub stopped on SIGTERM", flush=True)
"""


def _get(url: str, timeout: float = 2.0) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return int(response.status), response.read()


@dataclass(frozen=True)
class Built:
    tag: str
    image_id: str
    build_seconds: float


@pytest.fixture(scope="session")
def stub_image(engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Built:
    """A context as the lead's renderer lays it out, with the stub in place of the runtime."""
    context = tmp_path_factory.mktemp("context")
    # Rendered for the default base and switched by build argument, as --base-image does.
    (context / "Dockerfile").write_text(render_dockerfile(multi_model=True), encoding="utf-8")
    (context / "requirements.txt").write_text("six==1.16.0\n", encoding="utf-8")
    (context / "serve").write_text(STUB_SERVE, encoding="utf-8")
    (context / "serve").chmod(0o755)
    (context / "code").mkdir()
    (context / "code" / "README").write_text("container code goes here\n", encoding="utf-8")
    lines: list[str] = []
    started = time.monotonic()
    image_id = engine.build(context, STUB_TAG, base_image=BASE_IMAGE, on_line=lines.append)
    took = time.monotonic() - started
    cached = sum("Using cache" in line for line in lines)
    print(f"\n[engine] build of {STUB_TAG}: {took:.1f} s ({cached} cached steps)")
    assert any("STEP" in line or "Step" in line for line in lines)
    return Built(STUB_TAG, image_id, took)


def test_missing_engine_binary_is_a_clear_error() -> None:
    with pytest.raises(EngineError, match=r"no 'no-such-engine-binary' executable on PATH"):
        Engine("podman", binary="no-such-engine-binary")
    with pytest.raises(UsageError, match=r"engine: got 'containerd'; allowed: podman, docker"):
        Engine("containerd")


def test_build_labels_and_rebuild_from_cache(engine: Engine, stub_image: Built) -> None:
    assert engine.image_exists(stub_image.tag)
    assert engine.image_id(stub_image.tag) == stub_image.image_id
    labels = engine.inspect_labels(stub_image.tag)
    assert labels[BIND_TO_PORT_LABEL] == "true"
    assert labels[MULTI_MODEL_LABEL] == "true"
    assert not engine.image_exists("localhost/composer-engine-test:never-built")


def test_build_failure_names_the_engine_and_shows_output(engine: Engine, tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text(
        f"FROM {BASE_IMAGE}\nRUN echo about to fail && exit 3\n", encoding="utf-8"
    )
    with pytest.raises(EngineError) as failure:
        engine.build(tmp_path, "localhost/composer-engine-test:broken")
    message = str(failure.value)
    assert message.startswith(f"{engine.name} build")
    assert "about to fail" in message


def test_run_ping_stop_remove(engine: Engine, stub_image: Built, tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "weights.bin").write_bytes(b"\0" * 16)
    port = free_port()
    name = f"composer-engine-test-{uuid.uuid4().hex[:8]}"
    token = uuid.uuid4().hex
    started = time.monotonic()
    engine.run(
        name,
        stub_image.tag,
        env={"SAGEMAKER_BIND_TO_PORT": str(port), "COMPOSER_TEST_TOKEN": token},
        model_dir=model,
        labels={"com.sagemaker-composer.test": "engine"},
    )
    try:
        deadline = time.monotonic() + READY_WAIT
        status = None
        while time.monotonic() < deadline:
            try:
                status, body = _get(f"http://127.0.0.1:{port}/ping")
                break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                if engine.container_status(name) != "running":
                    pytest.fail(f"container exited before /ping answered:\n{engine.logs(name)}")
                time.sleep(0.2)
        ready = time.monotonic() - started
        assert status == 200, f"no /ping within {READY_WAIT:.0f} s:\n{engine.logs(name)}"
        assert body == b""
        print(f"\n[engine] run to first /ping 200: {ready:.2f} s")

        _, raw = _get(f"http://127.0.0.1:{port}/facts")
        facts = json.loads(raw)
        assert facts["argv"] == ["serve"]  # CMD ["serve"] reached the exec-form ENTRYPOINT
        assert facts["model"] == ["weights.bin"]
        assert facts["model_writable"] is False
        assert facts["token"] == token
        assert facts["six"] == "1.16.0"
        print(f"[engine] RLIMIT_NOFILE in the container: {facts['nofile']}")
        # Environment values travel in the engine's environment, never on its command line.
        argv, _ = engine.run_argv(name, stub_image.tag, env={"COMPOSER_TEST_TOKEN": token})
        assert "COMPOSER_TEST_TOKEN" in argv and token not in " ".join(argv)
        if engine.name == "podman":  # Podman records the command line; Docker records none
            template = "{{json .Config.CreateCommand}}"
            create = subprocess.run(
                [engine.binary, "container", "inspect", "--format", template, name],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            assert token not in create, "environment values must not be on the command line"

        stop_started = time.monotonic()
        engine.stop(name)
        print(f"[engine] stop (SIGTERM handled): {time.monotonic() - stop_started:.2f} s")
        assert engine.container_status(name) == "exited"
        assert "stub stopped on SIGTERM" in engine.logs(name)
    finally:
        engine.rm(name, force=True)
    assert not engine.container_exists(name)
    assert engine.container_status(name) is None


def test_stop_kills_a_container_that_ignores_sigterm(engine: Engine, stub_image: Built) -> None:
    name = f"composer-engine-test-{uuid.uuid4().hex[:8]}"
    engine.run(
        name,
        stub_image.tag,
        entrypoint="/opt/venv/bin/python",
        args=[
            "-c",
            "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            "print('ignoring SIGTERM', flush=True); time.sleep(600)",
        ],
    )
    try:
        deadline = time.monotonic() + READY_WAIT
        while "ignoring SIGTERM" not in engine.logs(name):
            if time.monotonic() > deadline:
                pytest.fail(f"the SIGTERM-ignoring process did not start:\n{engine.logs(name)}")
            time.sleep(0.2)
        started = time.monotonic()
        engine.stop(name, timeout=2)
        took = time.monotonic() - started
        print(f"\n[engine] stop of a SIGTERM-ignoring container, timeout 2: {took:.2f} s")
        assert engine.container_status(name) == "exited"
        assert engine.container_exit_code(name) == 137, "killed (128 + SIGKILL) after ignoring it"
    finally:
        engine.rm(name, force=True)
    assert not engine.container_exists(name)


def test_push_and_pull_back_by_digest(engine: Engine, stub_image: Built, registry: str) -> None:
    destination = f"{registry}/composer/stub:test"
    started = time.monotonic()
    digest = engine.push(stub_image.tag, destination, tls_verify=False)
    print(f"\n[engine] push to a loopback registry: {time.monotonic() - started:.1f} s")
    assert digest.startswith("sha256:")
    request = urllib.request.Request(
        f"http://{registry}/v2/composer/stub/manifests/test",
        method="HEAD",
        headers={
            "Accept": "application/vnd.oci.image.manifest.v1+json, "
            "application/vnd.docker.distribution.manifest.v2+json"
        },
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.headers["Docker-Content-Digest"] == digest

    by_digest = f"{registry}/composer/stub@{digest}"
    try:
        started = time.monotonic()
        pulled_id = engine.pull(by_digest, tls_verify=False)
        print(f"[engine] pull by digest: {time.monotonic() - started:.1f} s")
        assert pulled_id == stub_image.image_id
        assert engine.inspect_labels(by_digest)[BIND_TO_PORT_LABEL] == "true"
    finally:
        engine.remove_image(by_digest)


def test_tag_and_remove_image(engine: Engine, stub_image: Built) -> None:
    alias = "localhost/composer-engine-test:alias"
    engine.tag(stub_image.tag, alias)
    assert engine.image_id(alias) == stub_image.image_id
    engine.remove_image(alias)
    assert not engine.image_exists(alias)
    assert engine.image_exists(stub_image.tag)


def test_login_with_the_password_on_stdin(
    engine: Engine, stub_image: Built, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    htpasswd_tool = shutil.which("htpasswd")
    if htpasswd_tool is None:
        pytest.skip("htpasswd is not installed (scripts/setup-podman.sh or -docker.sh do)")
    password = f"pw-{uuid.uuid4().hex}"
    htpasswd = tmp_path / "htpasswd"
    # -i reads the password from stdin, keeping it off this command line too.
    subprocess.run(
        [htpasswd_tool, "-Bic", str(htpasswd), "tester"], input=password, text=True, check=True
    )
    # Credentials go to a throw-away place, not the machine's own auth file.
    for key, value in engine.credentials_env(tmp_path / "credentials").items():
        monkeypatch.setenv(key, value)
    with local_registry(tmp_path, htpasswd) as address:
        destination = f"{address}/composer/private:test"
        with pytest.raises(EngineError) as refused:
            engine.push(stub_image.tag, destination, tls_verify=False)
        assert "push" in str(refused.value)

        wrong = f"wrong-{uuid.uuid4().hex}"
        with pytest.raises(EngineError) as failure:
            engine.login(address, "tester", wrong, tls_verify=False)
        assert wrong not in str(failure.value)
        assert "login" in str(failure.value)

        engine.login(address, "tester", password, tls_verify=False)
        digest = engine.push(stub_image.tag, destination, tls_verify=False)
        assert digest.startswith("sha256:")
    assert password not in (tmp_path / "registry.log").read_text()
