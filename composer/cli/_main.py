"""The `sm-compose` command line. Every failure ends as a message and an exit status."""

from __future__ import annotations

import json

import click

from ..spec import Pipeline
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
    document = Pipeline.model_json_schema()
    document["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    document["title"] = "sagemaker-composer pipeline"
    click.echo(json.dumps(document, indent=2))
