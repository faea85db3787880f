"""Adaptive batching in `serve`: a handler with batch_predict_fn, run from a build context with
real nginx, gunicorn (threaded workers) and falcon. Behaviour only, no timings asserted: a gate
file holds a batch inside batch_predict_fn while the next requests queue behind it."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_serving import REPO, Context, Served, _context

pytestmark = [pytest.mark.slow]

BATCHED_HANDLER = """
import json
import os
import time
from pathlib import Path

from composer_serving import BadRequest

GATES = Path(os.environ["TEST_GATES"])


def model_fn(model_dir):
    return "model"


def input_fn(body, content_type):
    doc = json.loads(body)
    (GATES / f"arrived-{doc['id']}").touch()
    if "bad" in doc:
        raise BadRequest(f"request {doc['id']}: bad input")
    return doc


def batch_predict_fn(inputs, model):
    for doc in inputs:
        if doc.get("hold"):  # wait for the test to open the gate: the others queue meanwhile
            while not (GATES / "open").exists():
                time.sleep(0.01)
        time.sleep(doc.get("sleep", 0))
    if any(doc.get("explode") for doc in inputs):
        raise RuntimeError("the batch exploded")
    ids = [doc["id"] for doc in inputs]
    # one output per input, in order; each names its own input, so a mix-up shows
    return [{"id": doc["id"], "double": 2 * doc["id"], "batch": ids} for doc in inputs]
"""


@pytest.fixture(scope="module")
def minimal_ctx(tmp_path_factory: pytest.TempPathFactory) -> Context:
    tmp = tmp_path_factory.mktemp("batching")
    spec = tmp / "pipeline.yaml"
    spec.write_text(
        f"name: batching\ncontainers:\n  - hostname: minimal\n"
        f"    build: {REPO / 'containers' / 'minimal'}\n"
    )
    ctx = _context("minimal", tmp, spec)
    (ctx.path / "code" / "batched.py").write_text(BATCHED_HANDLER)
    return ctx


@contextmanager
def _serve(ctx: Context, tmp: Path, port: int, **env: str) -> Iterator[tuple[Served, Path]]:
    gates = tmp / "gates"
    gates.mkdir()
    served = ctx.serve(
        tmp,
        port,
        **{
            "SAGEMAKER_PROGRAM": "batched.py",
            "SAGEMAKER_MODEL_SERVER_WORKERS": "1",
            "TEST_GATES": str(gates),
            **env,
        },
    )
    try:
        served.wait_ready()
        yield served, gates
    finally:
        (gates / "open").touch()
        assert served.stop() == 0


@pytest.fixture
def batched(
    minimal_ctx: Context, tmp_path: Path, free_port: Callable[[], int]
) -> Iterator[tuple[Served, Path]]:
    with _serve(minimal_ctx, tmp_path, free_port()) as served:
        yield served


def _answer(served: Served, doc: dict[str, Any]) -> tuple[int, Any]:
    status, _, body = served.post(json.dumps(doc).encode())
    return status, json.loads(body)


def held_then_queued(
    served: Served, gates: Path, followers: list[dict[str, Any]]
) -> tuple[tuple[int, Any], list[tuple[int, Any]]]:
    """A first request held inside batch_predict_fn, `followers` sent while it is held (all of
    them through input_fn, so queued), then the gate opened: the followers form the next batch."""
    with ThreadPoolExecutor(len(followers) + 1) as pool:
        first = pool.submit(_answer, served, {"id": 0, "hold": True})
        while not (gates / "arrived-0").exists():
            time.sleep(0.01)
        futures = [pool.submit(_answer, served, doc) for doc in followers]
        for doc in followers:
            while not (gates / f"arrived-{doc['id']}").exists():
                time.sleep(0.01)
        time.sleep(0.2)  # past input_fn, into the queue
        (gates / "open").touch()
        return first.result(), [f.result() for f in futures]


def test_concurrent_requests_reach_batch_predict_fn_together_in_order(
    batched: tuple[Served, Path],
) -> None:
    served, gates = batched
    log = served.log.read_text()
    assert "x 64 thread(s)" in log and "batching up to 32 requests, delay 0 ms" in log
    assert "Using worker: gthread" in log
    followers = [{"id": i} for i in range(1, 9)]
    first, answers = held_then_queued(served, gates, followers)
    assert first == (200, {"id": 0, "double": 0, "batch": [0]}), "an idle worker runs it alone"
    batch = answers[0][1]["batch"]
    assert sorted(batch) == list(range(1, 9)), "the eight queued requests are one batch"
    for doc, (status, answer) in zip(followers, answers, strict=True):
        assert status == 200
        assert answer == {"id": doc["id"], "double": 2 * doc["id"], "batch": batch}


def test_one_bad_input_fails_alone(batched: tuple[Served, Path]) -> None:
    served, gates = batched
    followers = [{"id": 1}, {"id": 2, "bad": True}, {"id": 3}]
    _, answers = held_then_queued(served, gates, followers)
    assert answers[1] == (400, {"error": "request 2: bad input", "type": "BadRequest"})
    for status, answer in (answers[0], answers[2]):
        assert status == 200 and sorted(answer["batch"]) == [1, 3]


def test_an_exception_in_the_batch_fails_every_request_of_that_batch(
    batched: tuple[Served, Path],
) -> None:
    served, gates = batched
    followers = [{"id": 1}, {"id": 2, "explode": True}, {"id": 3}]
    first, answers = held_then_queued(served, gates, followers)
    assert first[0] == 200, "the batch before is not touched"
    for status, answer in answers:
        assert (status, answer) == (
            500,
            {"error": "RuntimeError: the batch exploded", "type": "ModelError"},
        )
    assert _answer(served, {"id": 4}) == (200, {"id": 4, "double": 8, "batch": [4]})


def test_a_timeout_counts_per_request_and_a_stuck_worker_is_replaced(
    minimal_ctx: Context, tmp_path: Path, free_port: Callable[[], int]
) -> None:
    with _serve(minimal_ctx, tmp_path, free_port(), SAGEMAKER_MODEL_SERVER_TIMEOUT="2") as (
        served,
        gates,
    ):
        with ThreadPoolExecutor(2) as pool:
            stuck = pool.submit(_answer, served, {"id": 1, "sleep": 60})
            while not (gates / "arrived-1").exists():
                time.sleep(0.01)
            queued = pool.submit(_answer, served, {"id": 2})
            status, answer = stuck.result()
            assert (status, answer["type"]) == (504, "Timeout")
            assert "(2 s)" in answer["error"] and "batch was still running" in answer["error"]
            status, answer = queued.result()
            assert (status, answer["type"]) == (504, "Timeout")
            assert "queued behind a batch that ran past" in answer["error"]
        # a fresh worker takes over; a request racing the replacement gets the same 504
        deadline = time.monotonic() + 30
        while (got := _answer(served, {"id": 3}))[0] != 200 and time.monotonic() < deadline:
            assert got[1]["type"] == "Timeout"
            time.sleep(0.2)
        assert got == (200, {"id": 3, "double": 6, "batch": [3]})
        assert "gunicorn starts a fresh one" in served.log.read_text()


def test_batching_off_is_one_request_per_call_on_sync_workers(
    minimal_ctx: Context, tmp_path: Path, free_port: Callable[[], int]
) -> None:
    with _serve(
        minimal_ctx,
        tmp_path,
        free_port(),
        COMPOSER_MAX_BATCH_SIZE="1",
        SAGEMAKER_MODEL_SERVER_WORKERS="2",
    ) as (served, gates):
        log = served.log.read_text()
        assert "Using worker: sync" in log and "batching up to" not in log
        (gates / "open").touch()
        with ThreadPoolExecutor(6) as pool:
            answers = list(pool.map(_answer, [served] * 6, [{"id": i} for i in range(6)]))
        assert answers == [(200, {"id": i, "double": 2 * i, "batch": [i]}) for i in range(6)]


def test_bad_batching_settings_exit_2(
    minimal_ctx: Context, tmp_path: Path, free_port: Callable[[], int]
) -> None:
    for env, message in (
        ({"COMPOSER_MAX_BATCH_SIZE": "0"}, "COMPOSER_MAX_BATCH_SIZE: got 0; allowed is 1 to 1024"),
        ({"COMPOSER_MAX_BATCH_DELAY_MS": "soon"}, "COMPOSER_MAX_BATCH_DELAY_MS: got 'soon'"),
        ({"COMPOSER_WORKER_THREADS": "1"}, "allowed is 2 to 1024 when batching"),
    ):
        served = minimal_ctx.serve(tmp_path, free_port(), SAGEMAKER_PROGRAM="batched.py", **env)
        assert served.proc.wait(timeout=30) == 2
        assert message in served.log.read_text()
