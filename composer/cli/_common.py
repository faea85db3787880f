"""Helpers shared by every command: error handling, spec loading, progress on the terminal."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from functools import wraps
from typing import TYPE_CHECKING, Any, TypeVar

import click

from ..errors import ComposerError, SpecError
from ..redaction import redact_text
from ..spec import Pipeline, load_pipeline

if TYPE_CHECKING:
    from types import TracebackType

    from ..runners.contract import Runner

F = TypeVar("F", bound=Callable[..., Any])


def friendly(func: F) -> F:
    """Turn our errors into messages; unexpected ones too, unless COMPOSER_DEBUG is set.

    Every message passes through redact_text: an error must not print an AWS secret.
    """

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except SpecError as exc:
            for issue in exc.issues:
                click.echo(redact_text(str(issue)), err=True)
            sys.exit(exc.exit_code)
        except ComposerError as exc:
            click.echo(redact_text(f"error: {exc}"), err=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            sys.exit(130)
        except BrokenPipeError:  # `sm-compose invoke ... | head`: the reader has gone
            # Python's own advice: point stdout at devnull so the exit's flush cannot raise.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(141)  # 128 + SIGPIPE, as a shell tool killed by it ends
        except click.exceptions.Exit:
            raise
        except Exception as exc:  # the last line of defence: never a traceback
            if os.environ.get("COMPOSER_DEBUG"):
                raise
            if type(exc).__module__.startswith("botocore."):  # AWS unreachable, refused, ...
                click.echo(redact_text(f"error: AWS: {exc}"), err=True)
                sys.exit(1)
            click.echo(
                redact_text(
                    f"internal error: {type(exc).__name__}: {exc} "
                    "(set COMPOSER_DEBUG=1 for a traceback)"
                ),
                err=True,
            )
            sys.exit(1)

    return wrapper  # type: ignore[return-value]


def load(path: str) -> Pipeline:
    return load_pipeline(path)


pipeline_arg = click.argument("pipeline", type=click.Path(dir_okay=False))

engine_option = click.option(
    "--engine",
    type=click.Choice(["podman", "docker"]),
    default=None,
    help="Run the built images with this OCI engine instead of local processes.",
)


def runner_for(engine: str | None) -> Runner | None:
    """The runner of `--engine`: None keeps the default process runner."""
    if engine is None:
        return None
    from ..runners.oci import EngineRunner

    return EngineRunner(engine)


class Spinner:
    """The steps of a long command: on a terminal, a spinner showing the latest one; otherwise
    those `keep` lets through, one line each on stderr. Runs while the `with` block does."""

    def __init__(self, title: str, keep: Callable[[str], bool] = lambda _message: True) -> None:
        from rich.console import Console

        console = Console(stderr=True)
        self._status = console.status(title) if console.is_terminal else None
        self._keep = keep

    def say(self, message: str) -> None:
        if self._status is not None:
            self._status.update(message[:120])
        elif self._keep(message):
            click.echo(message, err=True)

    def stop(self) -> None:
        """Gone for good: what the command prints next stays on the screen."""
        if self._status is not None:
            self._status.stop()

    def __enter__(self) -> Spinner:
        if self._status is not None:
            self._status.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
