"""Adaptive batching: concurrent requests of one worker process go to `batch_predict_fn` together.

A handler that defines `batch_predict_fn(inputs, model) -> list` gets every request's
`input_fn` result here, and each request its own output back, in order. The policy is
adaptive: a request that finds no batch running runs its own batch of one at once, in its own
thread (no waiting for company, no hand-off to another thread); while a batch runs, the next
requests queue, and when it ends its thread wakes the first of them, which runs what queued
meanwhile as the next batch (up to COMPOSER_MAX_BATCH_SIZE, after an optional wait of at most
COMPOSER_MAX_BATCH_DELAY_MS for more). `input_fn` and `output_fn` run per request in the
request's own thread, so a bad input or an unanswerable Accept fails that request alone. See
docs/containers.md, "Adaptive batching".
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

from . import environment
from .errors import Timeout

log = logging.getLogger("composer_serving")

BatchFn = Callable[[list[Any], Any], Any]
#: How a request whose own thread is stuck in batch_predict_fn still gets its 504 (errors.py).
AnswerLate = Callable[[Timeout], object]


@dataclass(eq=False)
class _Pending:
    """One request's input, waiting for its output, its batch's error, or its turn to lead."""

    data: Any
    deadline: float
    answer_late: AnswerLate | None = None
    # looked up per request: under gevent's workers threading.Event is patched after import
    wake: threading.Event = field(default_factory=lambda: threading.Event())
    taken: bool = False  # in a batch that is running
    lead: bool = False  # woken to run the next batch itself
    finished: bool = False
    answered_late: bool = False  # its 504 went out while its thread was still in the batch
    result: Any = None
    error: BaseException | None = None

    def finish(self, result: Any = None, error: BaseException | None = None) -> None:
        self.result, self.error, self.finished = result, error, True
        self.wake.set()


class Batcher:
    """The queue of one worker process; the request threads take turns to run its batches.

    Nothing else runs `batch_predict_fn`: the thread of the request at the head of a batch
    does (the leader). A watchdog thread, started on the first request in the worker (threads
    do not survive gunicorn's fork), notices a leader past its own deadline: its request is
    answered 504 by `answer_late` (its thread is still inside the call), every queued request
    too, and `on_overrun` is called: the model call is stuck, so the worker should be replaced
    (gunicorn's sync workers are, by gunicorn itself).
    """

    def __init__(
        self,
        batch_fn: BatchFn,
        *,
        max_size: int,
        max_delay: float,
        timeout: float,
        on_overrun: Callable[[], None] | None = None,
        cooperative: bool = False,
    ) -> None:
        self.batch_fn = batch_fn
        # gevent's workers: nothing else runs while a greenlet computes, so an idle leader
        # yields once first, for the requests already arrived to queue with it
        self.cooperative = cooperative
        self.max_size = max_size
        self.max_delay = max_delay
        self.timeout = timeout
        self.on_overrun = on_overrun
        self._lock = threading.Lock()
        self._collecting: _Pending | None = None  # a leader waiting up to max_delay for more
        self._queue: deque[_Pending] = deque()
        self._running: _Pending | None = None  # the leader of the batch that runs
        self._model: Any = None
        self._pid: int | None = None
        self._stuck = False
        self.batches = 0  # how many batch_predict_fn calls; for the log and the tests

    def predict(
        self,
        data: Any,
        model: Any,
        started: float | None = None,
        answer_late: AnswerLate | None = None,
    ) -> Any:
        """This request's output; its SAGEMAKER_MODEL_SERVER_TIMEOUT counts from `started`."""
        begun = time.monotonic() if started is None else started
        item = _Pending(data, begun + self.timeout, answer_late)
        if self._pid != os.getpid():
            self._start_watchdog()
        batch: list[_Pending] = []
        collect = False
        with self._lock:
            if self._stuck:
                raise self._stuck_error()
            self._model = model
            if self._running is None:  # idle: this request is a batch of one, run here and now
                self._running = item
                if self.cooperative:
                    self._queue.append(item)
                    collect = True
                else:
                    item.taken = True
                    batch = [item]
            else:
                self._queue.append(item)
                if self._collecting is not None:
                    self._collecting.wake.set()  # one more for the batch it is filling
        if collect:  # cooperative: let the requests already arrived queue first
            time.sleep(0)
            with self._lock:
                batch = self._take(item, wait=False)
        if batch:
            return self._lead(item, batch, model)
        if not item.wake.wait(max(0.0, item.deadline - time.monotonic())):
            with self._lock:
                late = None if item.wake.is_set() else self._time_out(item)
            if late is not None:  # its time ran out, queued or in another's batch
                raise late
        if item.lead and not item.finished:
            with self._lock:
                batch = self._take(item)
            return self._lead(item, batch, self._model)
        return self._outcome(item)

    def _outcome(self, item: _Pending) -> Any:
        if item.error is not None:
            raise item.error
        return item.result

    def _time_out(self, item: _Pending) -> Timeout:
        """Under the lock: `item` ran out of time waiting; the error it answers with."""
        leader = self._running
        if item.taken:
            where = "its batch was still running"
            self._overrun()  # batch_predict_fn is past this request's timeout: no batch follows
        else:
            self._queue.remove(item)
            if leader is not None and leader.taken and time.monotonic() >= leader.deadline:
                self._overrun()  # the batch it waits behind is past its own leader's timeout
                return self._stuck_error()
            where = "it was still queued"
        log.error("a request ran out of time (%g s): %s", self.timeout, where)
        return self._late(where)

    def _late(self, where: str | None = None) -> Timeout:
        """A request's own timeout error (`where` it was then, if known)."""
        said = f"no answer within SAGEMAKER_MODEL_SERVER_TIMEOUT ({self.timeout:g} s)"
        return Timeout(f"{said}; {where}" if where else said)

    def _overrun(self, replace: bool = True) -> bool:
        """Under the lock: the running batch is stuck; refuse what queued and what comes next.

        True the first time; then `on_overrun` runs on a thread of its own (not under the
        lock), unless `replace` is false (the caller runs it when it is done).
        """
        if self._stuck:
            return False
        self._stuck = True
        for queued in self._queue:
            queued.finish(error=self._stuck_error())
        self._queue.clear()
        if replace:
            self._replace()
        return True

    def _replace(self) -> None:
        if self.on_overrun is not None:
            threading.Thread(target=self.on_overrun, name="batch-overrun", daemon=True).start()

    def _stuck_error(self) -> Timeout:
        return Timeout(
            f"queued behind a batch that ran past SAGEMAKER_MODEL_SERVER_TIMEOUT "
            f"({self.timeout:g} s); the worker holding it is being replaced, send it again"
        )

    def _take(self, leader: _Pending, wait: bool = True) -> list[_Pending]:
        """Under the lock: the next batch, `leader` (the queue's head) first; under load
        (`wait`), after up to max_delay for more."""
        if wait and self.max_delay > 0:
            until = time.monotonic() + self.max_delay
            while len(self._queue) < self.max_size and (left := until - time.monotonic()) > 0:
                leader.wake.clear()
                self._collecting = leader
                self._lock.release()
                try:
                    leader.wake.wait(left)
                finally:
                    self._lock.acquire()
                    self._collecting = None
        batch: list[_Pending] = []
        while self._queue and len(batch) < self.max_size:
            queued = self._queue.popleft()
            queued.taken = True
            batch.append(queued)
        self._running = leader
        return batch

    def _lead(self, leader: _Pending, batch: list[_Pending], model: Any) -> Any:
        """Run one batch in this request's thread, wake the next leader, return this output."""
        try:
            self._answer(batch, model)
        finally:
            with self._lock:
                self.batches += 1
                self._running = None
                if self._queue and not self._stuck:
                    head = self._queue[0]
                    head.lead = True
                    self._running = head  # nobody else starts a batch before it takes one
                    head.wake.set()
                late = leader.answered_late
        if late:
            raise self._late()
        return self._outcome(leader)

    def _answer(self, batch: list[_Pending], model: Any) -> None:
        try:
            outputs = list(self.batch_fn([item.data for item in batch], model))
            if len(outputs) != len(batch):
                raise RuntimeError(
                    f"batch_predict_fn returned {len(outputs)} outputs for {len(batch)} "
                    "inputs; it must return one output per input, in order"
                )
        except BaseException as exc:  # every request of the batch gets it
            if len(batch) > 1:
                log.error("batch_predict_fn failed for a batch of %d requests", len(batch))
            for item in batch:
                item.finish(error=exc)
            if not isinstance(exc, Exception):
                raise
            return
        for item, output in zip(batch, outputs, strict=True):
            item.finish(result=output)

    def _start_watchdog(self) -> None:
        """Once per process; started outside the lock (under gevent, starting one yields)."""
        with self._lock:
            first, self._pid = self._pid != os.getpid(), os.getpid()
        if first:
            threading.Thread(target=self._watch, name="batch-watchdog", daemon=True).start()

    def _watch(self) -> None:
        """Every tick: is the running batch's leader past its deadline? Then answer it 504."""
        tick = min(1.0, max(0.05, self.timeout / 20))
        while True:
            time.sleep(tick)
            with self._lock:
                leader = self._running
                if (
                    leader is None
                    or not leader.taken
                    or leader.finished
                    or leader.answered_late
                    or time.monotonic() < leader.deadline
                ):
                    continue
                leader.answered_late = True
                first = self._overrun(replace=False)
            log.error("a request ran out of time (%g s): its batch was still running", self.timeout)
            if leader.answer_late is not None:
                leader.answer_late(self._late("its batch was still running"))
            if first:
                self._replace()


def replace_this_worker() -> None:
    """Ask gunicorn to replace this worker: SIGTERM, its graceful stop (a new one is forked).

    The requests it holds are answered first (each by its own deadline, at most
    SAGEMAKER_MODEL_SERVER_TIMEOUT from now). The thread stuck in batch_predict_fn would hold
    the stop up (gunicorn waits for its connection, then Python for its thread), so once every
    other request has had its time the process ends at once, and the batch with it.
    """
    log.error("a batch ran past the timeout; this worker stops and gunicorn starts a fresh one")
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(environment.timeout() + 0.5)
    log.error("the stuck batch still holds this worker; it exits now")
    os._exit(1)
