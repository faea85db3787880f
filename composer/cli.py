"""The `sm-compose` command line. Every failure ends as a message and an exit status."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import click

from .errors import ComposerError, SpecError
from .spec import Pipeline, load_pipeline

F = TypeVar("F", bound=Callable[..., Any])


def _friendly(func: F) -> F:
    """Turn our errors into messages; unexpected ones too, unless COMPOSER_DEBUG is set."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except SpecError as exc:
            for issue in exc.issues:
                click.echo(str(issue), err=True)
            sys.exit(exc.exit_code)
        except ComposerError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            sys.exit(130)
        except click.exceptions.Exit:
            raise
        except Exception as exc:  # the last line of defence: never a traceback
            if os.environ.get("COMPOSER_DEBUG"):
                raise
            click.echo(
                f"internal error: {type(exc).__name__}: {exc} "
                "(set COMPOSER_DEBUG=1 for a traceback)",
                err=True,
            )
            sys.exit(1)

    return wrapper  # type: ignore[return-value]


def _load(path: str) -> Pipeline:
    return load_pipeline(path)


pipeline_arg = click.argument("pipeline", type=click.Path(dir_okay=False))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="sagemaker-composer", prog_name="sm-compose")
def cli() -> None:
    """Turn a pipeline.yaml into a SageMaker multi-container endpoint, locally and on AWS."""


@cli.command()
@pipeline_arg
@_friendly
def validate(pipeline: str) -> None:
    """Check PIPELINE; print every error as FILE:LINE: path: message (exit 2)."""
    spec = _load(pipeline)
    click.echo(f"{pipeline}: valid ({len(spec.containers)} containers, {spec.mode})")


@cli.command()
@_friendly
def schema() -> None:
    """Print the JSON Schema of pipeline.yaml, for editors (yaml-language-server)."""
    document = Pipeline.model_json_schema()
    document["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    document["title"] = "sagemaker-composer pipeline"
    click.echo(json.dumps(document, indent=2))


@cli.command()
@pipeline_arg
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    default=None,
    help="Write build contexts and SageMaker request documents here (files only).",
)
@_friendly
def build(pipeline: str, out: str | None) -> None:
    """Write every build context and the SageMaker requests of PIPELINE."""
    from .render.context import write_build

    spec = _load(pipeline)
    target = Path(out) if out else spec.base_dir / ".composer" / spec.name / "build"
    contexts, requests = write_build(spec, target)
    for ctx in contexts:
        click.echo(f"{ctx.hostname}: {ctx.path} (tag {ctx.tag})")
    click.echo(f"requests: {target / 'sagemaker'} (model {requests.model_name})")


def main() -> None:
    cli(prog_name="sm-compose")
