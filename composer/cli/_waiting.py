"""How the AWS commands wait: their --poll-interval, --timeout and --no-wait options, and the
live status line on stderr (stdout stays machine-readable)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import click

from ..polling import Wait

if TYPE_CHECKING:
    from rich.console import Console

F = TypeVar("F", bound=Callable[..., Any])


def seconds_option(flag: str, default: float, help: str, **extra: Any) -> Callable[[F], F]:
    """An option of seconds, zero or more."""
    return click.option(
        flag,
        type=click.FloatRange(min=0.0),
        default=default,
        show_default=True,
        help=help,
        **extra,
    )


def poll_option(default: float, help: str) -> Callable[[F], F]:
    """--poll-interval; SM_COMPOSE_POLL_INTERVAL sets it too (the tests poll fast)."""
    return seconds_option("--poll-interval", default, help, envvar="SM_COMPOSE_POLL_INTERVAL")


no_wait_option = click.option(
    "--no-wait", is_flag=True, help="Return once SageMaker has accepted the requests."
)


def wait_of(no_wait: bool, poll_interval: float, timeout: float) -> Wait | None:
    """What the options ask: no waiting, or how to wait."""
    return None if no_wait else Wait(interval=poll_interval, timeout=timeout)


class RichReporter:
    """The AWS layer's Reporter for a terminal: messages, and a spinner while it waits."""

    def __init__(self, console: Console | None = None) -> None:
        from rich.console import Console  # here: every command starts sooner without rich

        self.console = console or Console(stderr=True, highlight=False)

    def say(self, text: str) -> None:
        self.console.print(text, markup=False, soft_wrap=True)

    @contextmanager
    def waiting(self, what: str) -> Iterator[Callable[[str, float], None]]:
        seen: list[str] = []
        with self.console.status(f"{what}: waiting") as display:

            def update(status: str, elapsed: float) -> None:
                display.update(f"{what}: {status} ({elapsed:.0f} s)")
                if not seen or seen[-1] != status:
                    seen.append(status)
                    self.say(f"{what}: {status}")

            yield update
