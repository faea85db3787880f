"""How the AWS layer tells its caller what it does: messages, and the state of what it waits for.

The layer only calls a Reporter; the CLI's draws a live status line on stderr
(`composer.cli._waiting.RichReporter`), library callers and tests may pass `Quiet`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Protocol

#: Told each state seen while waiting, with the seconds waited so far.
StatusUpdate = Callable[[str, float], None]


class Reporter(Protocol):
    def say(self, text: str) -> None:
        """One line for the user."""

    def waiting(self, what: str) -> AbstractContextManager[StatusUpdate]:
        """The span of one wait for `what`; the update is told every state seen."""


class Quiet:
    """Shows nothing; keeps the messages (library use, tests)."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    def say(self, text: str) -> None:
        self.messages.append(text)

    @contextmanager
    def waiting(self, what: str) -> Iterator[StatusUpdate]:
        yield lambda _status, _elapsed: None
