"""The serving runtime's small rules, checked without starting anything: the `type` each error
puts on the wire, how the environment is parsed, and what handlers import."""

from __future__ import annotations

import re
import threading
import time
import types
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

import composer.serving
from composer.serving import app, batching, environment, errors, multimodel, sessions
from composer.serving.handler import Handler


def _subclasses(cls: type[errors.ServingError]) -> list[type[errors.ServingError]]:
    return [c for sub in cls.__subclasses__() for c in (sub, *_subclasses(sub))]


def test_each_error_is_named_after_the_type_it_answers() -> None:
    found = {c.__name__: c.kind for c in _subclasses(errors.ServingError)}
    assert found == {name: name for name in found}
    assert {"ModelNotFound", "ModelLoadError", "MultiModelContainer", "NotFound"} <= set(found)
    assert errors.ServingError("x").kind == "InternalError"


def test_a_handlers_own_error_keeps_the_kind_it_names_or_inherits() -> None:
    class Teapot(errors.ServingError):
        status = 418
        kind = "ImATeapot"

    class TooLong(errors.BadRequest):
        pass

    assert (Teapot("x").kind, TooLong("x").kind) == ("ImATeapot", "BadRequest")


def test_handlers_import_the_errors_and_media_type_from_the_package() -> None:
    assert composer.serving.UnsupportedMediaType is errors.UnsupportedMediaType
    assert composer.serving.UnsupportedContentType is errors.UnsupportedMediaType
    assert composer.serving.media_type("Application/JSON; charset=utf-8") == "application/json"
    assert composer.serving.media_type(None) == ""
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = composer.serving.nope


@pytest.mark.parametrize(
    ("value", "expected"),
    [("", None), ("  ", None), ("true", True), ("YES", True), ("1", True), ("No", False)],
)
def test_flags(monkeypatch: pytest.MonkeyPatch, value: str, expected: bool | None) -> None:
    monkeypatch.setenv("COMPOSER_PRELOAD_MODEL", value)
    assert environment.preload() is expected


@pytest.mark.parametrize(
    ("name", "value", "read", "message"),
    [
        (
            "SAGEMAKER_MULTI_MODEL",
            "Maybe",
            environment.multi_model,
            "got 'Maybe'; allowed is true or false",
        ),
        (
            "COMPOSER_MME_MEMORY_MB",
            "0",
            multimodel.Limits.from_environment,
            "got 0; allowed is 1 to 16777216",
        ),
        (
            "COMPOSER_MME_MAX_MODELS",
            "two",
            multimodel.Limits.from_environment,
            "got 'two'; allowed is a whole number",
        ),
    ],
)
def test_the_app_reads_the_variables_as_serve_checks_them(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, read: Callable[[], object], message: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(environment.ConfigError) as caught:
        read()
    assert str(caught.value) == f"{name}: {message}"


def test_multi_model_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COMPOSER_MME_MAX_MODELS", raising=False)
    monkeypatch.setenv("COMPOSER_MME_MEMORY_MB", " 2 ")
    assert multimodel.Limits.from_environment() == multimodel.Limits(2 * multimodel.MB, None)


def test_the_handler_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COMPOSER_CODE_DIR", raising=False)
    monkeypatch.delenv("SAGEMAKER_PROGRAM", raising=False)
    assert environment.handler_path() == environment.BASE / "code" / "inference.py"
    monkeypatch.setenv("COMPOSER_CODE_DIR", "/opt/program/code")
    monkeypatch.setenv("SAGEMAKER_PROGRAM", " other.py ")
    assert str(environment.handler_path()) == "/opt/program/code/other.py"


# --- streaming and sessions ----------------------------------------------------------------------


def _handler(**functions: Callable[..., object]) -> Handler:
    module = types.ModuleType("inference")
    module.model_fn = lambda model_dir: None  # type: ignore[attr-defined]
    for name, fn in functions.items():
        setattr(module, name, fn)
    return Handler(module)


def test_a_generator_prediction_streams_each_item_as_bytes() -> None:
    def predict_fn(data: object, model: object) -> Iterator[object]:
        yield {"n": 1}
        yield "two\n"
        yield b"three\n"

    payload, produced = _handler(predict_fn=predict_fn).transform(
        None, b"{}", "application/json", "application/json"
    )
    assert produced == "application/jsonlines"
    assert not isinstance(payload, bytes)
    assert list(payload) == [b'{"n": 1}\n', b"two\n", b"three\n"]


def test_a_generator_output_fn_keeps_its_content_type_and_plain_answers_stay_whole() -> None:
    streaming = _handler(
        predict_fn=lambda data, model: "ab",
        output_fn=lambda letters, accept: ((s for s in letters), "text/x-letters"),
    )
    payload, produced = streaming.transform(None, b"{}", "application/json", "*/*")
    assert produced == "text/x-letters" and list(payload) == [b"a", b"b"]
    plain = _handler(predict_fn=lambda data, model: [1, 2])
    whole = plain.transform(None, b"{}", "application/json", "*/*")
    assert whole == (b"[1, 2]", "application/json")


def test_a_stream_starts_before_its_headers_go_out() -> None:
    def failing() -> Iterator[bytes]:
        raise errors.BadRequest("refused before the first item")
        yield b""  # a generator

    with pytest.raises(errors.BadRequest):
        app.started(failing())
    assert app.started(iter([b"", b""])) == b""  # nothing to stream: an empty body
    streamed = app.started(iter([b"", b"a", b"", b"b"]))
    assert not isinstance(streamed, bytes) and list(streamed) == [b"a", b"b"]


def test_sessions_are_opened_and_closed_through_the_request_scope() -> None:
    with pytest.raises(RuntimeError, match="only meaningful while the runtime handles"):
        sessions.requested_session()
    with sessions.scope("NEW_SESSION") as headers:
        assert sessions.requested_session() == sessions.NEW_SESSION
        sid = sessions.open_session(ttl_seconds=60)
        with pytest.raises(ValueError, match="letters, digits and inner hyphens"):
            sessions.open_session("bad id")
    value = headers[sessions.NEW_SESSION_ID]
    assert re.fullmatch(rf"{sid}; Expires=\d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\dZ", value)
    with sessions.scope(sid) as headers:
        sessions.close_session(sid)
    assert headers == {sessions.CLOSED_SESSION_ID: sid}
    with sessions.scope(None):
        assert sessions.requested_session() is None


def test_an_idle_batcher_runs_a_lone_request_in_its_own_thread() -> None:
    """No hand-off when idle: batch_predict_fn runs in the caller's thread, at once."""
    seen: list[tuple[list[int], str]] = []

    def batch_fn(inputs: list[int], model: object) -> list[int]:
        seen.append((inputs, threading.current_thread().name))
        return [2 * x for x in inputs]

    batcher = batching.Batcher(batch_fn, max_size=8, max_delay=0.05, timeout=5)
    assert batcher.predict(21, "model") == 42
    assert seen == [([21], threading.current_thread().name)]


def test_what_queues_behind_a_batch_is_the_next_batch_run_by_its_first_request() -> None:
    gate, inside = threading.Event(), threading.Event()
    seen: list[tuple[list[int], str]] = []

    def batch_fn(inputs: list[int], model: object) -> list[int]:
        seen.append((inputs, threading.current_thread().name))
        if inputs == [0]:
            inside.set()
            gate.wait(5)
        return [10 * x for x in inputs]

    batcher = batching.Batcher(batch_fn, max_size=3, max_delay=0, timeout=5)
    with ThreadPoolExecutor(6, thread_name_prefix="request") as pool:
        first = pool.submit(batcher.predict, 0, "model")
        assert inside.wait(5)
        rest = []
        for x in range(1, 6):
            rest.append(pool.submit(batcher.predict, x, "model"))
            while len(batcher._queue) < x:  # queued in order
                time.sleep(0.001)
        gate.set()
        assert [first.result(5), *(f.result(5) for f in rest)] == [0, 10, 20, 30, 40, 50]
    assert [inputs for inputs, _ in seen] == [[0], [1, 2, 3], [4, 5]]
    assert all(name.startswith("request") for _, name in seen), "no thread of its own"
    assert batcher.batches == 3


def test_a_lone_request_stuck_in_its_batch_is_answered_late_and_the_worker_replaced() -> None:
    release = threading.Event()
    answered: list[errors.Timeout] = []
    overrun = threading.Event()

    def batch_fn(inputs: list[int], model: object) -> list[int]:
        release.wait(10)
        return inputs

    batcher = batching.Batcher(
        batch_fn, max_size=4, max_delay=0, timeout=0.2, on_overrun=overrun.set
    )
    with ThreadPoolExecutor(1) as pool:
        stuck = pool.submit(batcher.predict, 1, "model", None, answered.append)
        assert overrun.wait(5), "the watchdog saw the leader past its deadline"
        assert "its batch was still running" in answered[0].message
        with pytest.raises(errors.Timeout, match="queued behind a batch that ran past"):
            batcher.predict(2, "model")
        release.set()
        with pytest.raises(errors.Timeout):
            stuck.result(5)
