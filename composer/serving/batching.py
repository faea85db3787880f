"""Adaptive batching: concurrent requests of one worker process go to `batch_predict_fn` together.

A handler that defines `batch_predict_fn(inputs, model) -> list` gets every request's
`input_fn` result queued here; one thread per worker process hands what is queued to it and
gives each request its own output back, in order. The policy is adaptive: an idle batcher
takes a lone request at once (no waiting for company), and while a batch runs the next
requests queue, so under load a batch is what arrived meanwhile, up to COMPOSER_MAX_BATCH_SIZE,
after an optional wait of at most COMPOSER_MAX_BATCH_DELAY_MS for more. `input_fn` and
`output_fn` run per request in the request's own thread, so a bad input or an unanswerable
Accept fails that request alone. See docs/containers.md, "Adaptive batching".
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .errors import Timeout

log = logging.getLogger("composer_serving")

BatchFn = Callable[[list[Any], Any], Any]


@dataclass(eq=False)
class _Pending:
    """One request's input, waiting for its output (or the error of its batch)."""

    data: Any
    deadline: float
    done: threading.Event = field(default_factory=threading.Event)
    taken: bool = False
    result: Any = None
    error: BaseException | None = None


class Batcher:
    """The queue and the one thread that runs `batch_predict_fn` in this worker process.

    The thread starts on the first request, in the worker (gunicorn may build the app in its
    master before forking, and threads do not survive a fork). `on_overrun` is called when a
    request's time runs out while its batch is still running: the model call is stuck, so the
    worker should be replaced (gunicorn's sync workers are, by gunicorn itself).
    """

    def __init__(
        self,
        batch_fn: BatchFn,
        *,
        max_size: int,
        max_delay: float,
        timeout: float,
        on_overrun: Callable[[], None] | None = None,
    ) -> None:
        self.batch_fn = batch_fn
        self.max_size = max_size
        self.max_delay = max_delay
        self.timeout = timeout
        self.on_overrun = on_overrun
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._queue: deque[_Pending] = deque()
        self._model: Any = None
        self._pid: int | None = None
        self._stuck = False
        self.batches = 0  # how many batch_predict_fn calls; for the log and the tests

    def predict(self, data: Any, model: Any, started: float | None = None) -> Any:
        """This request's output; its SAGEMAKER_MODEL_SERVER_TIMEOUT counts from `started`."""
        item = _Pending(data, (time.monotonic() if started is None else started) + self.timeout)
        with self._lock:
            if self._stuck:
                raise self._stuck_error()
            self._start_thread()
            self._model = model
            self._queue.append(item)
            self._arrived.notify()
        if not item.done.wait(max(0.0, item.deadline - time.monotonic())):
            with self._lock:
                finished = item.done.is_set()
                if not finished and not item.taken:
                    self._queue.remove(item)
                overran = not finished and item.taken and not self._stuck
                if overran:
                    self._stuck = True  # batch_predict_fn is past the timeout: no batch follows
                    for queued in self._queue:
                        queued.error = self._stuck_error()
                        queued.done.set()
                    self._queue.clear()
            if not finished:
                where = "its batch was still running" if item.taken else "it was still queued"
                log.error("a request ran out of time (%g s): %s", self.timeout, where)
                if overran and self.on_overrun is not None:
                    self.on_overrun()
                raise Timeout(
                    f"no answer within SAGEMAKER_MODEL_SERVER_TIMEOUT ({self.timeout:g} s); {where}"
                )
        if item.error is not None:
            raise item.error
        return item.result

    def _stuck_error(self) -> Timeout:
        return Timeout(
            f"queued behind a batch that ran past SAGEMAKER_MODEL_SERVER_TIMEOUT "
            f"({self.timeout:g} s); the worker holding it is being replaced, send it again"
        )

    def _start_thread(self) -> None:
        if self._pid == os.getpid():
            return
        self._pid = os.getpid()
        threading.Thread(target=self._run, name="batcher", daemon=True).start()

    def _next_batch(self, loaded: bool) -> tuple[list[_Pending], Any]:
        with self._lock:
            while not self._queue:
                loaded = False  # it went idle: the next request is dispatched at once
                self._arrived.wait()
            if loaded and self.max_delay > 0:
                until = time.monotonic() + self.max_delay
                while len(self._queue) < self.max_size:
                    left = until - time.monotonic()
                    if left <= 0:
                        break
                    self._arrived.wait(left)
            batch: list[_Pending] = []
            while self._queue and len(batch) < self.max_size:
                item = self._queue.popleft()
                item.taken = True
                batch.append(item)
            return batch, self._model

    def _run(self) -> None:
        loaded = False
        while True:
            batch, model = self._next_batch(loaded)
            self._answer(batch, model)
            self.batches += 1
            loaded = True  # what queued meanwhile is the next batch

    def _answer(self, batch: list[_Pending], model: Any) -> None:
        try:
            outputs = list(self.batch_fn([item.data for item in batch], model))
            if len(outputs) != len(batch):
                raise RuntimeError(
                    f"batch_predict_fn returned {len(outputs)} outputs for {len(batch)} "
                    "inputs; it must return one output per input, in order"
                )
        except BaseException as exc:  # every request of the batch gets it, the thread goes on
            if len(batch) > 1:
                log.error("batch_predict_fn failed for a batch of %d requests", len(batch))
            for item in batch:
                item.error = exc
                item.done.set()
            if not isinstance(exc, Exception):
                raise
            return
        for item, output in zip(batch, outputs, strict=True):
            item.result = output
            item.done.set()


def replace_this_worker() -> None:
    """Ask gunicorn to replace this worker: SIGTERM, its graceful stop (a new one is forked).

    The requests it holds are answered first (each by its own deadline); a batch stuck in
    batch_predict_fn dies with the process.
    """
    log.error("a batch ran past the timeout; this worker stops and gunicorn starts a fresh one")
    os.kill(os.getpid(), signal.SIGTERM)
