"""The transform's progress: what the engine reports while it runs, and a plain counter.

The live bar a terminal shows is the CLI's (`composer.cli._progress.RichProgress`).
"""

from __future__ import annotations

import sys
import time
from typing import Protocol


class TransformProgress(Protocol):
    """What the engine reports while it runs."""

    def add_total(self, records: int) -> None: ...

    def advance(self, records: int, *, failed: bool = False) -> None: ...

    def note(self, text: str) -> None: ...


class Counter:
    """Counts only; for tests, library use and non-terminal runs (notes go to stderr)."""

    def __init__(self, quiet: bool = True) -> None:
        self.total = 0
        self.done = 0
        self.failed = 0
        self.quiet = quiet
        self.started = time.monotonic()

    def add_total(self, records: int) -> None:
        self.total += records

    def advance(self, records: int, *, failed: bool = False) -> None:
        self.done += records
        if failed:
            self.failed += records

    def note(self, text: str) -> None:
        if not self.quiet:
            print(text, file=sys.stderr, flush=True)
