"""User-facing failures: the CLI prints these as messages, never as tracebacks."""

from __future__ import annotations

from dataclasses import dataclass


class ComposerError(Exception):
    """A failure the user can act on; `exit_code` is what the CLI exits with."""

    exit_code = 1


class UsageError(ComposerError):
    """Bad input given on the command line or in a spec; checked before anything runs."""

    exit_code = 2


@dataclass(frozen=True)
class SpecIssue:
    """One problem in a pipeline file, located as precisely as the YAML allows."""

    file: str
    line: int
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.path}: " if self.path else ""
        return f"{self.file}:{self.line}: {where}{self.message}"


class SpecError(UsageError):
    """Every problem found in a pipeline file, so the user can fix them in one pass."""

    def __init__(self, issues: list[SpecIssue]) -> None:
        self.issues = issues
        super().__init__("\n".join(str(i) for i in issues))
