"""Waiting for something outside this process: one loop of probe, check, sleep.

Deploy waits for an endpoint, a transform job for its end, `EndpointClient.wait_async` for an
answer in S3: each says what to probe, when it is done and what a timeout raises.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Wait:
    """How to wait: probe every `interval` seconds, give up after `timeout` seconds."""

    interval: float
    timeout: float


def poll_until(
    probe: Callable[[], T],
    done: Callable[[T], bool],
    wait: Wait,
    *,
    timed_out: Callable[[T], Exception],
    on_poll: Callable[[T, float], None] | None = None,
) -> T:
    """Probe until `done` says so; the last probe's value.

    `on_poll` sees every value and the seconds since the start. Past the timeout, the exception
    `timed_out` makes of the last value is raised; a probe may raise to stop early.
    """
    start = time.monotonic()
    while True:
        value = probe()
        elapsed = time.monotonic() - start
        if on_poll is not None:
            on_poll(value, elapsed)
        if done(value):
            return value
        if elapsed >= wait.timeout:
            raise timed_out(value)
        time.sleep(wait.interval)
