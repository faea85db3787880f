"""The `sm-compose` command line: one module per group of commands, registered here."""

from __future__ import annotations

from ._main import cli


def _register() -> None:
    # Each feature's commands live in their own module; optional ones register when present.
    import importlib

    for name in ("local", "aws", "images", "batch"):
        try:
            module = importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise
            continue
        for command in getattr(module, "COMMANDS", ()):
            cli.add_command(command)


_register()


def main() -> None:
    cli(prog_name="sm-compose")


__all__ = ["cli", "main"]
