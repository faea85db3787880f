"""Hostile input against the serving runtime itself: real nginx, gunicorn and falcon from `serve`.

A build context of the echo fixture (the answer is the body upper-cased) served on loopback with
SAGEMAKER_MODEL_SERVER_TIMEOUT=2, so nginx gives a slow client 7 s. Hypothesis draws bodies,
content types, header values and paths; nothing may answer 5xx, and afterwards /ping and a normal
invocation still work.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from composer.render.context import write_build_context
from composer.runners.envs import ensure_env, python_of
from composer.runners.modeldata import prepare_model_dir
from composer.spec import load_pipeline
from tests.hostile import ECHO_BODIES, HEADER_VALUES, MEDIA_HEADER, PRINTABLE

from .rawhttp import Answer, build, closed_by_peer, exchange, read_answer
from .test_serving import Context, Served

pytestmark = [pytest.mark.slow]

ECHO = Path(__file__).parent / "fixtures" / "echo"
LIMIT = 6291456
MODEL_TIMEOUT = 2
CLIENT_TIMEOUT = MODEL_TIMEOUT + 5  # what serve gives nginx's client_header/body_timeout
FUZZ = settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
H_ATTRS = b"X-Amzn-SageMaker-Custom-Attributes"


@pytest.fixture(scope="module")
def echo(
    tmp_path_factory: pytest.TempPathFactory, free_port: Callable[[], int]
) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp("echo-hostile")
    spec = tmp / "pipeline.yaml"
    spec.write_text(f"name: echo-hostile\ncontainers:\n  - hostname: echo\n    build: {ECHO}\n")
    pipeline = load_pipeline(spec)
    container = pipeline.container("echo")
    ctx = write_build_context(pipeline, container, tmp / "echo")
    env = ensure_env(ctx.path / "requirements.txt", label="echo")
    context = Context(ctx.path, python_of(env), prepare_model_dir(None, None, tmp / "model"))
    served = context.serve(tmp, free_port(), SAGEMAKER_MODEL_SERVER_TIMEOUT=str(MODEL_TIMEOUT))
    served.wait_ready()
    yield served
    served.stop()


#: (test, status) -> count of raw-socket answers, shown at the end (-s)
SEEN: Counter[tuple[str, int]] = Counter()


def assert_runtime_answer(a: Answer | None) -> None:
    """2xx or 4xx; JSON `{"error", "type"}` when the app or our nginx config answered.

    nginx's and gunicorn's own protocol refusals (400, 413, 414) are their HTML pages: they
    come before any handler and never reach a gateway that speaks valid HTTP.
    """
    assert a is not None, "the container closed the connection without an answer"
    test = os.environ.get("PYTEST_CURRENT_TEST", "?").split("::")[-1].split(" ")[0]
    SEEN[(test, a.status)] += 1
    assert a.status < 500, (a.status, a.body[:500])
    if a.status >= 400 and a.headers.get("content-type", "").startswith("application/json"):
        doc = a.json()
        assert isinstance(doc, dict) and {"error", "type"} <= set(doc), a.body[:300]


def assert_healthy(served: Served) -> None:
    assert served.request("/ping")[0] == 200
    status, _, body = served.post(b'{"still": "fine"}')
    assert (status, body) == (200, b'{"STILL": "FINE"}')
    assert served.proc.poll() is None


@FUZZ
@given(
    body=ECHO_BODIES,
    content_type=MEDIA_HEADER,
    accept=MEDIA_HEADER,
    attrs=st.none() | st.text(PRINTABLE, max_size=4000),
)
def test_random_bodies_and_content_types(
    echo: Served, body: bytes, content_type: str | None, accept: str | None, attrs: str | None
) -> None:
    headers = [
        (name, value.encode())
        for name, value in ((b"Content-Type", content_type), (b"Accept", accept), (H_ATTRS, attrs))
        if value is not None
    ]
    a = exchange(echo.port, build(b"/invocations", headers, body))
    assert_runtime_answer(a)
    assert a is not None
    assert a.status == 200, (a.status, a.body[:300])  # echo takes any body and type
    assert a.body == body.upper()
    if attrs is not None:
        assert a.headers.get(H_ATTRS.decode().lower(), "") == attrs.strip(" \t")


@FUZZ
@given(
    name=st.sampled_from([b"Content-Type", b"Accept", H_ATTRS, b"Content-Length", b"X-Other"]),
    value=HEADER_VALUES,
)
def test_hostile_header_values(echo: Served, name: bytes, value: bytes) -> None:
    a = exchange(echo.port, build(b"/invocations", [(name, value)], b'{"x": 1}'))
    assert_runtime_answer(a)


_PIECES = st.sampled_from(
    [
        "..",
        ".",
        "%2e%2e",
        "%2F",
        "/",
        "//",
        "%00",
        "%",
        "%zz",
        "invocations",
        "%69nvocations",
        "ping",
        "execution-parameters",
        "models",
        "\u00e9",
        "%C3%A9",
        "\u2603",
        "c" * 300,
        "?x=1",
        "#f",
        ";v=1",
        "\\",
        "%20",
    ]
)


@FUZZ
@given(pieces=st.lists(_PIECES, max_size=6), method=st.sampled_from([b"POST", b"GET", b"PUT"]))
def test_paths_with_tricks(echo: Served, pieces: list[str], method: bytes) -> None:
    path = ("/" + "".join(pieces)).encode()
    a = exchange(
        echo.port,
        build(path, [(b"Content-Type", b"application/json")], b'{"p": 1}', method=method),
        method=method.decode(),
    )
    assert_runtime_answer(a)
    assert a is not None
    if a.status == 200 and method == b"POST":  # only the echo itself answers a POST
        assert a.body == b'{"P": 1}', (path, a.body[:200])


def test_body_one_byte_over_the_limit(echo: Served) -> None:
    headers = [(b"Content-Type", b"application/octet-stream")]
    for chunked in (False, True):
        a = exchange(
            echo.port, build(b"/invocations", headers, b"x" * (LIMIT + 1), chunked=chunked)
        )
        assert_runtime_answer(a)
        assert a is not None and a.status == 413, (chunked, a)
    exact = exchange(echo.port, build(b"/invocations", headers, b"x" * LIMIT))
    assert exact is not None and exact.status == 200 and exact.body == b"X" * LIMIT


def _trickle(sock: socket.socket, data: bytes, every: float, stop: threading.Event) -> None:
    for i in range(len(data)):
        if stop.is_set():
            return
        try:
            sock.send(data[i : i + 1])
        except OSError:
            return
        time.sleep(every)


def test_slow_clients_are_cut_off_and_hold_no_worker(echo: Served) -> None:
    head = build(b"/invocations", [(b"Content-Length", b"100000")], None)
    stop = threading.Event()
    slow_head = socket.create_connection(("127.0.0.1", echo.port))
    stalled = socket.create_connection(("127.0.0.1", echo.port))
    stalled.sendall(head + b"z" * 10)
    trickling = []  # more than the 2 gunicorn workers
    for _ in range(4):
        sock = socket.create_connection(("127.0.0.1", echo.port))
        sock.sendall(head)
        trickling.append(sock)
    threads = [threading.Thread(target=_trickle, args=(slow_head, head, 0.5, stop), daemon=True)]
    threads += [
        threading.Thread(target=_trickle, args=(s, b"y" * 100000, 0.5, stop), daemon=True)
        for s in trickling
    ]
    for t in threads:
        t.start()
    try:
        # nginx buffers bodies before gunicorn sees them: the workers stay free
        for _ in range(3):
            status, _, body = echo.post(b'{"a": 1}')
            assert (status, body) == (200, b'{"A": 1}')
        # headers not complete, or a body that stopped: closed after the client timeout
        assert closed_by_peer(slow_head, CLIENT_TIMEOUT + 10)
        stalled.settimeout(CLIENT_TIMEOUT + 10)
        assert read_answer(stalled) is None, "nginx closes a stalled body without an answer"
        # a body still trickling is held by nginx alone; normal requests keep being served
        assert echo.post(b'{"b": 2}')[0] == 200
        for sock in trickling:
            with pytest.raises(BlockingIOError):
                sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    finally:
        stop.set()
        for sock in [slow_head, stalled, *trickling]:
            sock.close()
    assert_healthy(echo)


def test_container_stays_healthy_after_the_fuzzing(echo: Served) -> None:
    for key, count in sorted(SEEN.items()):
        print("answers seen:", *key, count)
    assert_healthy(echo)
    assert "Traceback" not in echo.log.read_text()
