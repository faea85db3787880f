"""The `sm-compose` command line: one module per group of commands, registered here."""

from __future__ import annotations

from . import aws, batch, images, init, local
from ._main import cli

for _module in (local, images, aws, batch, init):
    for _command in _module.COMMANDS:
        cli.add_command(_command)


def main() -> None:
    cli(prog_name="sm-compose")


__all__ = ["cli", "main"]
