"""The generated `serve`, run as a process from each build context: real nginx, gunicorn, falcon."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from composer.render.context import write_build_context
from composer.runners.envs import ensure_env, python_of
from composer.runners.modeldata import prepare_model_dir
from composer.spec import load_pipeline
from tests.conftest import alive

pytestmark = [pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
APPLE = "Apple is looking at buying U.K. startup for $1 billion"


@dataclass
class Served:
    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def request(
        self, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        req = urllib.request.Request(self.url + path, data=body, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
        except urllib.error.HTTPError as e:
            return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()

    def post(
        self, body: bytes, content_type: str = "application/json", **headers: str
    ) -> tuple[int, dict[str, str], bytes]:
        return self.request("/invocations", body, {"Content-Type": content_type, **headers})

    def wait_ready(self, timeout: float = 120) -> list[int]:
        """Ping until 200; returns the statuses seen (503 while the model loads)."""
        seen: list[int] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"serve ended; log:\n{self.log.read_text()[-3000:]}")
            try:
                status = self.request("/ping")[0]
            except (urllib.error.URLError, ConnectionError):
                status = 0
            seen.append(status)
            if status == 200:
                return seen
            time.sleep(0.2)
        self._abandon()  # a failed start must not leave nginx and gunicorn behind the test
        raise AssertionError(f"no 200 from /ping; log:\n{self.log.read_text()[-3000:]}")

    def _abandon(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # serve leads its own session
        self.proc.wait(timeout=10)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=40)


@dataclass
class Context:
    path: Path
    python: Path
    model_dir: Path

    def serve(self, tmp: Path, port: int | None = None, **env: str) -> Served:
        log = tmp / f"serve-{time.monotonic_ns()}.log"
        environment = {
            "PATH": os.environ["PATH"] + ":/usr/sbin",
            "HOME": os.environ.get("HOME", "/root"),
            "COMPOSER_LISTEN_HOST": "127.0.0.1",
            "SM_MODEL_DIR": str(self.model_dir),
            "SAGEMAKER_MODEL_SERVER_WORKERS": "2",
            **env,
        }
        if port is not None:
            environment["SAGEMAKER_BIND_TO_PORT"] = str(port)
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [str(self.python), str(self.path / "serve"), "serve"],
                cwd=self.path,
                env=environment,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return Served(proc, port or 8080, log)


def _context(
    hostname: str, tmp: Path, spec: Path = REPO / "pipelines" / "nlp-direct.yaml"
) -> Context:
    pipeline = load_pipeline(spec)
    container = pipeline.container(hostname)
    ctx = write_build_context(pipeline, container, tmp / hostname)
    env = ensure_env(ctx.path / "requirements.txt", label=hostname)
    source = pipeline.resolve(container.model_data) if container.model_data else None
    model = prepare_model_dir(container.model_data, source, tmp / "models" / hostname)
    return Context(ctx.path, python_of(env), model)


@pytest.fixture
def run_root() -> Iterator[Path]:
    """Where a killed serve's run files go (it cannot remove them), as `up` gives each container.

    Not under tmp_path: pytest's folders are private to their owner, and nginx's workers (nobody,
    when tests run as root) must reach the gunicorn socket inside.
    """
    folder = Path(tempfile.mkdtemp(prefix="sm-test-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def spacy_ctx(tmp_path_factory: pytest.TempPathFactory) -> Context:
    return _context("spacy", tmp_path_factory.mktemp("spacy"))


@pytest.fixture(scope="module")
def textblob_ctx(tmp_path_factory: pytest.TempPathFactory) -> Context:
    return _context("textblob", tmp_path_factory.mktemp("textblob"))


@pytest.fixture(scope="module")
def spacy(
    spacy_ctx: Context, tmp_path_factory: pytest.TempPathFactory, free_port: Callable[[], int]
) -> Iterator[Served]:
    served = spacy_ctx.serve(tmp_path_factory.mktemp("logs"), free_port())
    served.wait_ready()
    yield served
    served.stop()


@pytest.fixture(scope="module")
def textblob(
    textblob_ctx: Context, tmp_path_factory: pytest.TempPathFactory, free_port: Callable[[], int]
) -> Iterator[Served]:
    served = textblob_ctx.serve(tmp_path_factory.mktemp("logs"), free_port())
    served.wait_ready()
    yield served
    served.stop()


def test_spacy_gives_the_entities(spacy: Served) -> None:
    status, headers, body = spacy.post(json.dumps({"text": APPLE}).encode())
    assert status == 200
    assert headers["content-type"] == "application/json"
    doc = json.loads(body)
    entities = {(e["text"], e["label"]) for e in doc["entities"]}
    assert {("Apple", "ORG"), ("U.K.", "GPE"), ("$1 billion", "MONEY")} <= entities
    apple = next(e for e in doc["entities"] if e["text"] == "Apple")
    assert (apple["start"], apple["end"]) == (0, 5)
    assert doc["sentences"] == [APPLE]
    assert {"text": "Apple", "lemma": "Apple", "pos": "PROPN"} in doc["tokens"]
    assert "Apple" in doc["noun_chunks"]


def test_spacy_texts_plain_and_jsonlines(spacy: Served) -> None:
    many = json.dumps({"texts": [APPLE, "Paris is lovely."]}).encode()
    status, _, body = spacy.post(many)
    assert status == 200
    assert [r["text"] for r in json.loads(body)["results"]] == [APPLE, "Paris is lovely."]
    status, _, body = spacy.post(APPLE.encode(), "text/plain")
    assert json.loads(body)["text"] == APPLE
    lines = b'{"text": "Berlin is big."}\n{"text": "Rome is old."}\n'
    status, headers, body = spacy.post(lines, "application/jsonlines")
    assert headers["content-type"] == "application/jsonlines"
    rows = [json.loads(line) for line in body.decode().splitlines()]
    assert [r["entities"][0]["text"] for r in rows] == ["Berlin", "Rome"]


def test_a_streaming_handler_answers_chunked_through_nginx_and_gunicorn(spacy: Served) -> None:
    """spaCy's JSON Lines answer is a generator: chunked, each line sent as it is produced."""
    texts = [f"{APPLE} Text {i}." for i in range(40)]
    body = json.dumps({"texts": texts}).encode()
    with socket.create_connection(("127.0.0.1", spacy.port), timeout=30) as sock:
        sock.sendall(
            b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Accept: application/jsonlines\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        answer = http.client.HTTPResponse(sock)
        answer.begin()
        assert answer.status == 200
        assert answer.getheader("Transfer-Encoding") == "chunked"
        assert answer.getheader("Content-Length") is None
        assert answer.getheader("X-Accel-Buffering") is None  # nginx's own, never passed on
        assert answer.getheader("Content-Type") == "application/jsonlines"
        first = answer.readline()  # the first line while the others are still being analysed
        rest = answer.read()
    lines = [first, *rest.splitlines(keepends=True)]
    assert [json.loads(line)["text"] for line in lines] == texts


def test_textblob_sentiment_and_enrichment_of_spacy_output(spacy: Served, textblob: Served) -> None:
    status, _, body = textblob.post(b'{"text": "What a wonderful day"}')
    assert status == 200
    score = json.loads(body)
    assert set(score) == {"polarity", "subjectivity"} and score["polarity"] > 0.5
    _, _, analysed = spacy.post(b'{"text": "I love this phone. The battery is terrible."}')
    status, _, body = textblob.post(analysed)
    doc = json.loads(body)
    assert doc["entities"] == json.loads(analysed)["entities"]
    per = doc["sentiment"]["sentences"]
    assert [s["text"] for s in per] == ["I love this phone.", "The battery is terrible."]
    assert per[0]["polarity"] > 0 > per[1]["polarity"]


@pytest.mark.parametrize(
    ("body", "content_type", "accept", "status", "kind"),
    [
        (b"a,b", "text/csv", None, 415, "UnsupportedMediaType"),
        (b'{"text": "x"}', "application/json", "text/csv", 406, "NotAcceptable"),
        (b'{"text": ', "application/json", None, 400, "BadRequest"),
        (b'{"texts": [1, 2]}', "application/json", None, 400, "BadRequest"),
        (b'{"nothing": 1}', "application/json", None, 400, "BadRequest"),
    ],
)
def test_errors_are_json_and_the_worker_keeps_serving(
    spacy: Served, body: bytes, content_type: str, accept: str | None, status: int, kind: str
) -> None:
    headers = {"Accept": accept} if accept else {}
    got, response_headers, answer = spacy.post(body, content_type, **headers)
    assert got == status, answer
    assert response_headers["content-type"] == "application/json"
    assert json.loads(answer)["type"] == kind
    assert spacy.post(b'{"text": "still here"}')[0] == 200


def test_handler_exception_is_500(
    tmp_path: Path, textblob_ctx: Context, free_port: Callable[[], int]
) -> None:
    code = textblob_ctx.path / "code"
    broken = code / "broken.py"
    broken.write_text(
        "def model_fn(model_dir):\n    return None\n\n"
        "def predict_fn(data, model):\n    raise KeyError('the handler is broken')\n"
    )
    served = textblob_ctx.serve(tmp_path, free_port(), SAGEMAKER_PROGRAM="broken.py")
    try:
        served.wait_ready()
        status, _, body = served.post(b"{}")
        assert status == 500
        assert "the handler is broken" in json.loads(body)["error"]
        assert served.post(b"{}")[0] == 500, "the worker survived"
        assert "Traceback" in served.log.read_text(), "the traceback goes to the log"
    finally:
        served.stop()
        broken.unlink()


def test_full_sagemaker_payload_is_admitted(textblob: Served) -> None:
    text = "good " * ((6291456 - 20) // 5)
    body = json.dumps({"text": text}).encode()
    assert len(body) <= 6291456
    assert textblob.post(body)[0] == 200
    status, _, _ = textblob.post(b"x" * (6291456 + 1))
    assert status == 413


def test_execution_parameters_and_unknown_routes(spacy: Served, textblob: Served) -> None:
    status, _, body = spacy.request("/execution-parameters")
    assert status == 200 and json.loads(body)["MaxConcurrentTransforms"] == 2
    assert json.loads(textblob.request("/execution-parameters")[2]) == {
        "MaxConcurrentTransforms": 1,
        "BatchStrategy": "MULTI_RECORD",
        "MaxPayloadInMB": 6,
    }
    status, _, body = spacy.request("/nope")
    assert status == 404 and json.loads(body)["type"] == "NotFound"


def test_custom_attributes_come_back(textblob: Served) -> None:
    _, headers, _ = textblob.post(
        b'{"text": "ok"}', **{"X-Amzn-SageMaker-Custom-Attributes": "a=1"}
    )
    assert headers["x-amzn-sagemaker-custom-attributes"] == "a=1"


def test_ping_is_503_while_loading_then_200_sigterm_and_restart(
    tmp_path: Path,
    spacy_ctx: Context,
    free_port: Callable[[], int],
) -> None:
    port = free_port()
    template = (spacy_ctx.path / "nginx.conf.template").read_text()
    for attempt in range(2):  # the second start proves the template was not overwritten
        served = spacy_ctx.serve(tmp_path, port)
        seen = served.wait_ready()
        assert seen[-1] == 200
        if attempt == 0:
            assert 503 in seen, f"spaCy takes a moment to load; pings saw {seen}"
        children = psutil.Process(served.proc.pid).children(recursive=True)
        assert len(children) >= 3, "nginx master and worker, gunicorn master and workers"
        assert served.stop() == 0
        time.sleep(0.3)
        assert not alive(children), "nothing outlives serve"
        assert (spacy_ctx.path / "nginx.conf.template").read_text() == template


def test_port_defaults_to_8080(tmp_path: Path, textblob_ctx: Context) -> None:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", 8080))
        except OSError:
            pytest.skip("port 8080 is busy on this machine, so the default cannot be tried")
    served = textblob_ctx.serve(tmp_path, port=None)
    try:
        served.wait_ready()
        assert served.post(b'{"text": "fine"}')[0] == 200
    finally:
        assert served.stop() == 0


def test_bad_settings_exit_2_with_a_message(tmp_path: Path, textblob_ctx: Context) -> None:
    served = textblob_ctx.serve(tmp_path, SAGEMAKER_BIND_TO_PORT="eighty")
    assert served.proc.wait(timeout=30) == 2
    assert "SAGEMAKER_BIND_TO_PORT: got 'eighty'" in served.log.read_text()
    proc = subprocess.run(
        [str(textblob_ctx.python), str(textblob_ctx.path / "serve"), "train"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and "only serves" in proc.stderr


@pytest.mark.parametrize(
    ("program", "master"), [("nginx", "nginx: master"), ("gunicorn", "gunicorn")]
)
def test_a_dead_child_ends_serve_with_an_error(
    tmp_path: Path,
    textblob_ctx: Context,
    run_root: Path,
    program: str,
    master: str,
    free_port: Callable[[], int],
) -> None:
    """nginx or gunicorn dying ends `serve` non-zero, so its supervisor restarts the container."""
    served = textblob_ctx.serve(tmp_path, free_port(), COMPOSER_RUN_DIR=str(run_root))
    served.wait_ready()
    serve = psutil.Process(served.proc.pid)
    children = serve.children(recursive=True)
    found = [p for p in serve.children() if master in " ".join(p.cmdline())]
    assert len(found) == 1, found
    found[0].kill()  # its workers are left behind: serve must end them too
    assert served.proc.wait(timeout=40) != 0
    assert f"serve: {program} was killed by signal 9; stopping" in served.log.read_text()
    deadline = time.monotonic() + 40
    while alive(children) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not alive(children), "serve left no orphan behind"


PIDS_HANDLER = """
import os

PRELOAD = False


def model_fn(model_dir):
    return os.getpid()


def predict_fn(data, model):
    return {"loaded_in": model, "serving": os.getpid()}
"""


@pytest.mark.parametrize(("preload_env", "in_worker"), [(None, True), ("true", False)])
def test_handler_preload_false_loads_in_each_worker(
    tmp_path: Path,
    textblob_ctx: Context,
    preload_env: str | None,
    in_worker: bool,
    free_port: Callable[[], int],
) -> None:
    handler = textblob_ctx.path / "code" / "pids.py"
    handler.write_text(PIDS_HANDLER)
    env = {"SAGEMAKER_PROGRAM": "pids.py", "SAGEMAKER_MODEL_SERVER_WORKERS": "1"}
    if preload_env is not None:
        env["COMPOSER_PRELOAD_MODEL"] = preload_env  # the environment wins over PRELOAD
    served = textblob_ctx.serve(tmp_path, free_port(), **env)
    try:
        served.wait_ready()
        status, _, body = served.post(b"{}")
        assert status == 200, body
        pids = json.loads(body)
        assert (pids["loaded_in"] == pids["serving"]) is in_worker, pids
    finally:
        assert served.stop() == 0
        handler.unlink()


def test_nothing_outlives_a_killed_serve(
    tmp_path: Path,
    textblob_ctx: Context,
    run_root: Path,
    free_port: Callable[[], int],
) -> None:
    served = textblob_ctx.serve(tmp_path, free_port(), COMPOSER_RUN_DIR=str(run_root))
    served.wait_ready()
    children = psutil.Process(served.proc.pid).children(recursive=True)
    assert len(children) >= 3
    served.proc.send_signal(signal.SIGKILL)  # no chance to stop its children itself
    served.proc.wait(timeout=10)
    deadline = time.monotonic() + 40
    while alive(children) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = alive(children)
    assert not left, f"orphans after SIGKILL of serve: {left}"


def test_the_minimal_container_is_the_documented_handler_and_serves(
    tmp_path: Path, free_port: Callable[[], int]
) -> None:
    """containers/minimal, the folder users copy, is docs/containers.md's handler, and works."""
    doc = (REPO / "docs" / "containers.md").read_text()
    example = doc.split("A complete handler", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    minimal = REPO / "containers" / "minimal"
    assert example == (minimal / "inference.py").read_text()
    spec = tmp_path / "minimal.yaml"
    spec.write_text(f"name: minimal\ncontainers:\n  - hostname: minimal\n    build: {minimal}\n")
    served = _context("minimal", tmp_path, spec).serve(tmp_path, free_port())
    try:
        served.wait_ready()
        status, _, body = served.post(b'{"name": "world"}', "application/json; charset=utf-8")
        assert (status, json.loads(body)) == (200, {"message": "hello, world"})
        for bad, content_type, expected in (
            (b"{}", "application/json", (400, "BadRequest")),
            (b"[1]", "application/json", (400, "BadRequest")),
            (b"name=world", "text/csv", (415, "UnsupportedMediaType")),
        ):
            status, _, body = served.post(bad, content_type)
            assert (status, json.loads(body)["type"]) == expected
    finally:
        assert served.stop() == 0


def test_accept_lists_are_answered_with_the_first_choice(spacy: Served) -> None:
    status, headers, body = spacy.post(
        b'{"text": "Rome is old."}', Accept="text/csv;q=0.1, application/jsonlines"
    )
    assert (status, headers["content-type"]) == (200, "application/jsonlines")
    assert json.loads(body.decode().splitlines()[0])["entities"][0]["text"] == "Rome"


SLOW_HANDLER = """
import time


def model_fn(model_dir):
    return None


def predict_fn(data, model):
    time.sleep(data.get("sleep", 0))
    return data
"""


def test_a_request_past_the_timeout_is_a_json_504(
    tmp_path: Path, textblob_ctx: Context, free_port: Callable[[], int]
) -> None:
    handler = textblob_ctx.path / "code" / "slow.py"
    handler.write_text(SLOW_HANDLER)
    served = textblob_ctx.serve(
        tmp_path,
        free_port(),
        SAGEMAKER_PROGRAM="slow.py",
        SAGEMAKER_MODEL_SERVER_TIMEOUT="1",
        SAGEMAKER_MODEL_SERVER_WORKERS="1",
    )
    try:
        served.wait_ready()
        status, headers, body = served.post(b'{"sleep": 30}')
        assert (status, headers["content-type"]) == (504, "application/json"), body
        answer = json.loads(body)
        assert answer["type"] == "Timeout" and "(1 s)" in answer["error"]
        assert served.post(b'{"sleep": 0}')[0] == 200, "a fresh worker took over"
    finally:
        assert served.stop() == 0
        handler.unlink()


def test_spacy_model_archive_is_flat_plain_and_reproducible(tmp_path: Path) -> None:
    out = tmp_path / "model.tar.gz"
    script = [sys.executable, str(REPO / "scripts" / "make-spacy-model.py"), str(out)]
    subprocess.run(script, check=True, capture_output=True)
    with tarfile.open(out, "r:gz") as tar:
        members = tar.getmembers()
    names = [m.name for m in members]
    assert names == sorted(names) and {"config.cfg", "meta.json", "ner/model"} <= set(names)
    assert all(m.isfile() or m.isdir() for m in members), "no links or devices"
    assert {(m.uid, m.gid, m.mtime) for m in members} == {(0, 0, 0)}
    assert not [n for n in names if n.startswith(("/", "..")) or "/../" in n]
    made = out.stat().st_mtime_ns
    subprocess.run(script, check=True, capture_output=True)
    assert out.stat().st_mtime_ns == made, "a valid archive is left alone"
    shipped = REPO / "artifacts" / "spacy-model.tar.gz"
    if shipped.is_file():
        assert shipped.read_bytes() == out.read_bytes(), "same wheel, same bytes"
