"""The live bar of a local `sm-compose transform`: records done, records per second, elapsed."""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

from ..batch.progress import Counter


class _Rate(ProgressColumn):
    """Records per second over rich's recent samples."""

    def render(self, task: Task) -> Text:
        speed = task.speed
        return Text("" if speed is None else f"{speed:,.1f} records/s", style="progress.data.speed")


class RichProgress(Counter):
    """A live bar (records, records/s, elapsed) while the transform runs."""

    def __init__(self, console: Console | None = None) -> None:
        super().__init__(quiet=False)
        self.console = console or Console(stderr=True, highlight=False)
        self.bar = Progress(
            TextColumn("[bold]transform[/]"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("records"),
            _Rate(),
            TextColumn("{task.fields[failed]}"),
            TimeElapsedColumn(),
            console=self.console,
            transient=False,
        )
        self.task = self.bar.add_task("transform", total=None, failed="", start=False)

    def __enter__(self) -> RichProgress:
        self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.stop()

    def add_total(self, records: int) -> None:
        super().add_total(records)
        self.bar.start_task(self.task)
        self.bar.update(self.task, total=self.total)

    def advance(self, records: int, *, failed: bool = False) -> None:
        super().advance(records, failed=failed)
        text = f"[red]{self.failed} failed[/]" if self.failed else ""
        self.bar.update(self.task, advance=records, failed=text)

    def note(self, text: str) -> None:
        self.console.print(text, markup=False, soft_wrap=True)
