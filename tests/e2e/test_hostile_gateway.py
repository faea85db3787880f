"""Hostile input against a real `up`: the gateway answers 4xx or a SageMaker error, never a 500.

Two echo containers (tests/integration/fixtures/echo: the answer is the body upper-cased), once
Direct and once Serial. Hypothesis draws bodies, content types, header values and endpoint names,
for InvokeEndpoint and InvokeEndpointWithResponseStream;
schemathesis fuzzes docs/gateway-openapi.yaml (loaded from the file, and from a URL that
publishes docs/), the control plane's `POST /` (AWS JSON 1.1) among its routes; slow callers
are cut off while others are served. After all of it every container still answers /ping, a
normal invocation succeeds and the control plane still lists the endpoint.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import json
import os
import re
import socket
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.hostile import ECHO_BODIES, HEADER_VALUES, MEDIA_HEADER, PRINTABLE
from tests.integration.rawhttp import Answer, build, closed_by_peer, exchange, read_answer
from tests.unit.test_eventstream import reference_decode

from .conftest import REPO, Up, running_up, write_pipeline

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ECHO = REPO / "tests" / "integration" / "fixtures" / "echo"
OPENAPI = REPO / "docs" / "gateway-openapi.yaml"
LIMIT = 6291456
CLIENT_TIMEOUT = 2  # seconds; `up` reads COMPOSER_GATEWAY_CLIENT_TIMEOUT
EXAMPLES = 150
SCHEMA_EXAMPLES = 60  # per campaign (see _campaigns)
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
H_HOST = b"X-Amzn-SageMaker-Target-Container-Hostname"
H_ATTRS = b"X-Amzn-SageMaker-Custom-Attributes"
INVOKE, STREAM = b"/invocations", b"/invocations-response-stream"
_CONTAINER_LINE = re.compile(r"^(\S+)\s+(http://127\.0\.0\.1:\d+)\s+\(log ")


def _echo_pipeline(folder: Path, name: str, mode: str) -> Path:
    return write_pipeline(
        folder,
        f"""
name: {name}
mode: {mode}
containers:
  - hostname: first
    build: {ECHO}
    invocation_timeout: 5
  - hostname: second
    build: {ECHO}
    invocation_timeout: 5
""",
    )


@contextlib.contextmanager
def _running(factory: pytest.TempPathFactory, mode: str) -> Iterator[Up]:
    """`up` of the two echo containers as hostile-MODE, for the block."""
    name = f"hostile-{mode.lower()}"
    env = {"COMPOSER_GATEWAY_CLIENT_TIMEOUT": str(CLIENT_TIMEOUT)}
    with running_up(_echo_pipeline(factory.mktemp(name), name, mode), env=env) as up:
        yield up


@pytest.fixture(scope="module")
def direct(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    with _running(tmp_path_factory, "Direct") as up:
        yield up


@pytest.fixture(scope="module")
def serial(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    with _running(tmp_path_factory, "Serial") as up:
        yield up


def containers(up: Up) -> dict[str, str]:
    """hostname -> URL, as `up` printed them."""
    found = {}
    for line in up.lines:
        match = _CONTAINER_LINE.match(line)
        if match:
            found[match.group(1)] = match.group(2)
    assert set(found) == {"first", "second"}, up.lines[:10]
    return found


def assert_healthy(up: Up) -> None:
    """Every container answers /ping, and a normal invocation through the gateway works."""
    for hostname, url in containers(up).items():
        with urllib.request.urlopen(f"{url}/ping", timeout=10) as r:
            assert r.status == 200, hostname
    client: Any = up.client()
    extra = {"TargetContainerHostname": "second"} if "Direct" in _mode(up) else {}
    r = client.invoke_endpoint(
        EndpointName=up.name, Body=b'{"still": "fine"}', ContentType="application/json", **extra
    )
    assert r["Body"].read() == b'{"STILL": "FINE"}'


def _mode(up: Up) -> str:
    return next(line for line in up.lines if "ready at" in line)


#: (test, status, x-amzn-ErrorType) -> count of raw-socket answers, shown at the end (-s)
SEEN: Counter[tuple[str, int, str]] = Counter()


def _current_test() -> str:
    return os.environ.get("PYTEST_CURRENT_TEST", "?").split("::")[-1].split(" ")[0]


def assert_sagemaker_answer(a: Answer | None) -> None:
    """2xx, a 4xx, or a SageMaker error shape; never a gateway 500 or a container's 5xx.

    The echo containers fail only on request (a body with "fail" is their 400), so a ModelError
    relaying a 5xx, or a status-0 one (timeout, crash), is a bug somewhere too.
    """
    assert a is not None, "the gateway closed the connection without an answer"
    kind = a.headers.get("x-amzn-errortype")
    SEEN[(_current_test(), a.status, kind or "")] += 1
    if 200 <= a.status < 300:
        return
    assert 400 <= a.status < 500, (a.status, kind, a.body[:500])
    if kind is None:  # refused by aiohttp's HTTP parser before any handler ran
        assert a.status == 400, (a.status, a.body[:300])
        assert a.headers.get("content-type", "").startswith("text/plain")
        return
    doc = a.json()
    assert isinstance(doc, dict) and isinstance(doc.get("Message"), str), a.body[:300]
    assert a.headers.get("x-amzn-requestid")
    if kind == "ModelError":
        assert a.status == 424
        assert 400 <= doc["OriginalStatusCode"] < 500, doc
        assert doc["LogStreamArn"].startswith("arn:aws:logs:"), doc
    else:
        assert kind in ("ValidationError", "UnknownOperationException"), kind


def _invoke(
    port: int, name: str, headers: list[tuple[bytes, bytes]], body: bytes, route: bytes = INVOKE
) -> Answer:
    answer = exchange(port, build(b"/endpoints/%s%s" % (name.encode(), route), headers, body))
    assert_sagemaker_answer(answer)
    assert answer is not None
    return answer


def streamed_payload(a: Answer) -> bytes:
    """A 200 stream's PayloadParts joined (decoded by the tests' own decoder); no error event."""
    assert a.headers["content-type"] == "application/vnd.amazon.eventstream"
    messages = reference_decode(a.body)
    assert all(h[":event-type"] == "PayloadPart" for h, _ in messages), messages[-1]
    return b"".join(payload for _, payload in messages)


# ---- random bodies and content types ------------------------------------------------------


@pytest.mark.parametrize("which", ["direct", "serial"])
@FUZZ
@given(
    body=ECHO_BODIES,
    content_type=MEDIA_HEADER,
    accept=MEDIA_HEADER,
    attrs=st.none() | st.text(PRINTABLE, max_size=1024),
    target=st.sampled_from(["first", "second"]),
    route=st.sampled_from([INVOKE, STREAM]),
)
def test_random_bodies_and_content_types(
    request: pytest.FixtureRequest,
    which: str,
    body: bytes,
    content_type: str | None,
    accept: str | None,
    attrs: str | None,
    target: str,
    route: bytes,
) -> None:
    up: Up = request.getfixturevalue(which)
    headers = [] if which == "serial" else [(H_HOST, target.encode())]
    h_accept = b"Accept" if route == INVOKE else b"X-Amzn-SageMaker-Accept"
    for name, value in ((b"Content-Type", content_type), (h_accept, accept), (H_ATTRS, attrs)):
        if value is not None:
            headers.append((name, value.encode()))
    a = _invoke(up.port, up.name, headers, body, route)
    # the echo handler takes any body and type, so every one of these is answered
    assert a.status == 200, (a.status, a.body[:300])
    assert (a.body if route == INVOKE else streamed_payload(a)) == body.upper()
    if attrs is not None:
        assert a.headers.get(H_ATTRS.decode().lower(), "") == attrs.strip(" \t")


# ---- header values: over-long, non-ASCII, CR/LF -------------------------------------------

_HEADER_NAMES = st.sampled_from(
    [
        b"Content-Type",
        b"Accept",
        H_ATTRS,
        H_HOST,
        b"X-Amzn-SageMaker-Target-Variant",
        b"X-Amzn-SageMaker-Inference-Id",
        b"X-Amzn-SageMaker-Target-Model",
        b"X-Amzn-SageMaker-Session-Id",
        b"X-Amzn-SageMaker-Accept",
        b"X-Something-Else",
    ]
)
_HOSTILE_VALUES = HEADER_VALUES | st.just(
    b"\r\nX-Amzn-SageMaker-Target-Container-Hostname: second"  # header splitting
)


@FUZZ
@given(name=_HEADER_NAMES, value=_HOSTILE_VALUES, route=st.sampled_from([INVOKE, STREAM]))
def test_hostile_header_values(direct: Up, name: bytes, value: bytes, route: bytes) -> None:
    headers = [(H_HOST, b"first")] if name != H_HOST else []
    headers.append((name, value))
    a = _invoke(direct.port, direct.name, headers, b'{"x": 1}', route)
    if a.status == 200 and b"\r\n" not in value:  # (a CRLF starts a header line of its own)
        # only what SageMaker allows gets through where it limits a header
        ignored = {H_HOST, b"X-Something-Else"}
        ignored |= {b"Accept", b"X-Amzn-SageMaker-Target-Model"} if route == STREAM else set()
        ignored |= {b"X-Amzn-SageMaker-Accept"} if route == INVOKE else set()
        if name not in ignored:
            assert value.isascii() and len(value) <= 1024, (name, value[:200])
        assert name != b"X-Amzn-SageMaker-Session-Id", "no session is open: refused"
        assert (a.body if route == INVOKE else streamed_payload(a)) == b'{"X": 1}'


# ---- endpoint names with path tricks ------------------------------------------------------

_PIECES = st.sampled_from(
    [
        "..",
        ".",
        "%2e%2e",
        "%2E%2E%2F",
        "%2F",
        "%2f..%2f",
        "/",
        "//",
        "%00",
        "%",
        "%zz",
        "%25",
        "hostile-direct",
        "%68ostile-direct",
        "ping",
        "metrics",
        "\u00e9",
        "%C3%A9",
        "\u2603",
        "\u202e",
        "a" * 63,
        "b" * 300,
        "?x=1",
        "#frag",
        ";v=1",
        "%20",
        "\\",
        "~",
    ]
)


@FUZZ
@given(
    pieces=st.lists(_PIECES, max_size=5),
    suffix=st.sampled_from(
        [
            "/invocations",
            "/async-invocations",
            "/invocations-response-stream",
            "/invocations/..",
            "/invocations-response-stream/..",
            "",
            "/",
        ]
    ),
)
def test_endpoint_names_with_path_tricks(direct: Up, pieces: list[str], suffix: str) -> None:
    name = "".join(pieces)
    path = b"/endpoints/" + name.encode() + suffix.encode()
    a = exchange(direct.port, build(path, [(H_HOST, b"first")], b'{"p": 1}'))
    assert_sagemaker_answer(a)
    assert a is not None
    if a.status == 200:  # only the endpoint's own name, however it was spelled, gets through
        route = re.split("[?#]", name + suffix, maxsplit=1)[0]
        operation = "/invocations-response-stream" if "stream" in route else "/invocations"
        assert route.endswith(operation), path
        assert unquote(route.removesuffix(operation)) == direct.name, path


def test_unicode_endpoint_name_through_boto3(direct: Up) -> None:
    client: Any = direct.client()
    for name in ("h\u00e9", "..", "a" * 300, "x/../hostile-direct"):
        with pytest.raises(client.exceptions.ClientError) as caught:
            client.invoke_endpoint(EndpointName=name, Body=b"{}", ContentType="application/json")
        status = caught.value.response["ResponseMetadata"]["HTTPStatusCode"]
        assert 400 <= status < 500, (name, caught.value.response)


# ---- bodies of 6291456 + 1 bytes ----------------------------------------------------------


def test_body_one_byte_over_the_limit(direct: Up) -> None:
    headers = [(H_HOST, b"first"), (b"Content-Type", b"application/octet-stream")]
    over = b"x" * (LIMIT + 1)
    path = b"/endpoints/%s/invocations" % direct.name.encode()
    for chunked in (False, True):  # declared up front, or counted as it arrives
        a = exchange(direct.port, build(path, headers, over, chunked=chunked))
        assert_sagemaker_answer(a)
        assert a is not None and a.status == 400, chunked
        assert a.headers["x-amzn-errortype"] == "ValidationError"
        assert "oversize body" in str(a.json())
    exact = exchange(direct.port, build(path, headers, b"x" * LIMIT))
    assert exact is not None and exact.status == 200 and len(exact.body) == LIMIT


# ---- very slow bodies and headers (slowloris) ---------------------------------------------


def _trickle(
    sock: socket.socket, data: bytes, every: float, stop: threading.Event, outcome: list[str]
) -> None:
    """Send `data` a byte at a time; `outcome` gets "cut" if the server closed first."""
    for i in range(len(data)):
        if stop.is_set():
            outcome.append("stopped")
            return
        try:
            sock.send(data[i : i + 1])
        except OSError:
            outcome.append("cut")
            return
        time.sleep(every)
    outcome.append("sent")


def test_slow_callers_are_cut_off_while_others_are_served(direct: Up) -> None:
    path = b"/endpoints/%s/invocations" % direct.name.encode()
    head = build(path, [(H_HOST, b"first"), (b"Content-Length", b"1000")], None)
    stop = threading.Event()
    slow_head = socket.create_connection(("127.0.0.1", direct.port))
    slow_body = socket.create_connection(("127.0.0.1", direct.port))
    stalled = socket.create_connection(("127.0.0.1", direct.port))
    head_outcome: list[str] = []
    threads = [
        threading.Thread(
            target=_trickle, args=(slow_head, head, 0.2, stop, head_outcome), daemon=True
        ),
    ]
    slow_body.sendall(head)
    threads.append(
        threading.Thread(target=_trickle, args=(slow_body, b"y" * 1000, 0.2, stop, []), daemon=True)
    )
    stalled.sendall(head + b"z" * 10)
    for t in threads:
        t.start()
    try:
        # others are served meanwhile: answered before any slow caller was
        client: Any = direct.client()
        for _ in range(3):
            r = client.invoke_endpoint(
                EndpointName=direct.name, Body=b'{"a": 1}', TargetContainerHostname="second"
            )
            assert r["Body"].read() == b'{"A": 1}'
        for sock in (slow_body, stalled):
            with pytest.raises(BlockingIOError):
                sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        # a body still arriving, or stalled, after the client timeout: ValidationError, closed
        for sock in (slow_body, stalled):
            sock.settimeout(CLIENT_TIMEOUT + 10)
            a = read_answer(sock)
            assert a is not None and a.status == 400, a
            assert a.headers["x-amzn-errortype"] == "ValidationError"
            assert f"did not arrive within {CLIENT_TIMEOUT} s" in str(a.json())
            assert a.headers.get("connection", "").lower() == "close"
            assert closed_by_peer(sock, CLIENT_TIMEOUT + 10)
        # headers still incomplete: the connection is closed before they are all sent
        assert closed_by_peer(slow_head, CLIENT_TIMEOUT + 10)
        threads[0].join(timeout=10)
        assert head_outcome == ["cut"], "closed while the headers were still trickling"
    finally:
        stop.set()
        for sock in (slow_head, slow_body, stalled):
            sock.close()
    assert_healthy(direct)


# ---- schemathesis against the published OpenAPI description --------------------------------

_GATEWAY_ERRORS = {"InternalFailure"}
CONTROL_POSITIVE, CONTROL_NEGATIVE = "control plane, positive", "control plane, negative"
CONTROL_WRONG_TYPE = "control plane, another Content-Type"
_WRONG_TYPES = st.sampled_from(
    ["application/json", "text/plain", "application/x-amz-json-1.0", "application/xml", "",
     "application/x-www-form-urlencoded", "application/x-amz-json-1.1x", "*/*"]
)  # fmt: skip


def _content_type(case: Any, content_type: str) -> Any:
    """A well-formed control-plane call sent as another media type (the body still JSON)."""
    case.headers = {**(case.headers or {}), "Content-Type": content_type}
    return case


INVOKED = ("/invocations", "/invocations-response-stream")  # a 200 is the container's answer


@schemathesis.check
def no_gateway_failure(ctx: schemathesis.CheckContext, response: Any, case: Any) -> None:
    """No 5xx at all (the echo containers never fail unasked), and every error is shaped."""
    kind = response.headers.get("x-amzn-errortype", [None])[0]
    if response.status_code >= 500 or kind in _GATEWAY_ERRORS:
        raise AssertionError(f"{response.status_code} {kind}: {response.text[:500]}")
    if response.status_code >= 400 and kind is None:
        assert response.status_code == 400, response.text[:300]


_CHECKS = [
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "negative_data_rejection",
    "missing_required_header",
]


@schemathesis.check
def error_body_conforms(ctx: schemathesis.CheckContext, response: Any, case: Any) -> Any:
    """response_schema_conformance for the gateway's own answers (errors, 202, /metrics).

    A 200 from InvokeEndpoint is the container's body verbatim: the echo containers upper-case
    JSON (`null` -> `NULL`), which the gateway rightly passes on unparsed.
    """
    if case.operation.label.endswith(INVOKED) and response.status_code < 300:
        return None
    return _builtin("response_schema_conformance")(ctx, response, case)


@schemathesis.serializer("application/x-amz-json-1.1")
def _aws_json(ctx: schemathesis.SerializationContext, value: Any) -> bytes:
    """The control plane's bodies: JSON under AWS JSON 1.1's media type, which schemathesis
    does not take for JSON by its name."""
    return json.dumps(value, default=str).encode()


def _builtin(name: str) -> Any:
    from schemathesis.checks import CHECKS

    return CHECKS.get_one(name)


def _checks() -> list[Any]:
    return [_builtin(name) for name in _CHECKS] + [no_gateway_failure, error_body_conforms]


@pytest.fixture(scope="module")
def published_docs() -> Iterator[str]:
    """docs/ served on loopback, as a site publishing them would."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(REPO / "docs"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _campaigns(schema: Any, up: Up) -> list[tuple[str, st.SearchStrategy[Any], list[str]]]:
    """Every operation as generated, positive and negative, and InvokeEndpoint steered here.

    Left to itself the generator almost never guesses the endpoint's name (or the hostname a
    Direct endpoint needs), so little would reach a container.
    """
    positive, negative = schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE
    operations = {r.ok().label.rsplit("/", 1)[-1]: r.ok() for r in schema.get_all_operations()}
    named = {"EndpointName": up.name}
    fixed = {"X-Amzn-SageMaker-Target-Variant": "AllTraffic"}
    # for multi-model endpoints only; a session id this endpoint never opened is refused
    drop = ["X-Amzn-SageMaker-Target-Model", "X-Amzn-SageMaker-Session-Id"]
    if "Direct" in _mode(up):
        fixed[H_HOST.decode()] = "first"
    else:
        drop.append(H_HOST.decode())  # refused by Serial endpoints
    control = schema["/"]["POST"]  # the control plane, AWS JSON 1.1
    campaigns = [
        ("all operations, positive", schema.as_strategy(generation_mode=positive), []),
        ("all operations, negative", schema.as_strategy(generation_mode=negative), []),
        (CONTROL_POSITIVE, control.as_strategy(generation_mode=positive), []),
        (CONTROL_NEGATIVE, control.as_strategy(generation_mode=negative), []),
        (
            CONTROL_WRONG_TYPE,
            st.builds(_content_type, control.as_strategy(generation_mode=positive), _WRONG_TYPES),
            [],
        ),
    ]
    for what, route in (("invoke", "invocations"), ("stream", "invocations-response-stream")):
        operation = operations[route]
        campaigns += [
            (
                f"{what} this endpoint, positive",
                operation.as_strategy(path_parameters=named, headers=fixed),
                drop,
            ),
            (
                f"{what} this endpoint, negative",
                operation.as_strategy(negative, path_parameters=named),
                [],
            ),
        ]
    return campaigns


def _fuzz(schema: Any, up: Up) -> Counter[tuple[str, int]]:
    """Each campaign in turn; (campaign, status) -> count."""
    seen: Counter[tuple[str, int]] = Counter()
    for campaign, cases, drop in _campaigns(schema, up):
        _run_campaign(campaign, cases, drop, up.url, seen)
    return seen


def _run_campaign(
    campaign: str,
    cases: st.SearchStrategy[Any],
    drop: list[str],
    base_url: str,
    seen: Counter[tuple[str, int]],
) -> None:
    @given(case=cases)
    @settings(
        max_examples=SCHEMA_EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any) -> None:
        for name in drop:
            case.headers.pop(name, None)
        response = case.call_and_validate(base_url=base_url, checks=_checks(), timeout=30)
        seen[(campaign, response.status_code)] += 1

    run()


def assert_control_plane_answered(seen: Counter[tuple[str, int]], up: Up) -> None:
    """The control plane was fuzzed (its refusals are 4xx) and still lists `up`'s endpoint."""
    for campaign in (CONTROL_POSITIVE, CONTROL_NEGATIVE, CONTROL_WRONG_TYPE):
        statuses = {status for (c, status) in seen if c == campaign}
        assert statuses and all(200 <= s < 500 for s in statuses), (campaign, seen)
    assert {status for (c, status) in seen if c == CONTROL_NEGATIVE} == {400}, seen
    assert {status for (c, status) in seen if c == CONTROL_WRONG_TYPE} == {415}, seen
    listed = up.sagemaker().list_endpoints()["Endpoints"]
    assert up.name in [e["EndpointName"] for e in listed], listed


def test_openapi_from_path_against_direct(direct: Up) -> None:
    seen = _fuzz(schemathesis.openapi.from_path(OPENAPI), direct)
    print(f"schemathesis (from_path, Direct): {sum(seen.values())} calls {dict(seen)}")
    assert any(status == 200 for _, status in seen), seen
    assert_control_plane_answered(seen, direct)
    assert_healthy(direct)


def test_openapi_from_url_against_serial(serial: Up, published_docs: str) -> None:
    schema = schemathesis.openapi.from_url(f"{published_docs}/{OPENAPI.name}")
    seen = _fuzz(schema, serial)
    print(f"schemathesis (from_url, Serial): {sum(seen.values())} calls {dict(seen)}")
    assert any(status == 200 for _, status in seen), seen
    assert_control_plane_answered(seen, serial)
    assert_healthy(serial)


# ---- afterwards ---------------------------------------------------------------------------


def test_containers_stay_healthy_after_the_fuzzing(direct: Up, serial: Up) -> None:
    for key, count in sorted(SEEN.items()):
        print("answers seen:", *key, count)
    for up in (direct, serial):
        assert_healthy(up)
        assert up.proc.poll() is None
        assert not [line for line in up.lines if "Traceback" in line], "\n".join(up.lines[-40:])
