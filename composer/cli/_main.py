"""The `sm-compose` command line. Every failure ends as a message and an exit status."""

from __future__ import annotations

import json

import click

from ..spec import json_schema
from ._common import friendly, load, pipeline_arg


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="sagemaker-composer", prog_name="sm-compose")
def cli() -> None:
    """Turn a pipeline.yaml into a SageMaker multi-container endpoint, locally and on AWS."""


@cli.command()
@pipeline_arg
@friendly
def validate(pipeline: str) -> None:
    """Check PIPELINE; print every error as FILE:LINE: path: message (exit 2)."""
    spec = load(pipeline)
    click.echo(f"{pipeline}: valid ({len(spec.containers)} containers, {spec.mode})")


@cli.command()
@friendly
def schema() -> None:
    """Print the JSON Schema of pipeline.yaml, for editors (yaml-language-server)."""
    click.echo(json.dumps(json_schema(), indent=2))
