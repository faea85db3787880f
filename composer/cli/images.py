"""`sm-compose build` (and, with an engine, real images) and `sm-compose push`."""

from __future__ import annotations

from pathlib import Path

import click

from ._common import friendly, load, pipeline_arg


@click.command()
@pipeline_arg
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    default=None,
    help="Write build contexts and SageMaker request documents here (files only).",
)
@friendly
def build(pipeline: str, out: str | None) -> None:
    """Write every build context and the SageMaker requests of PIPELINE."""
    from ..render.context import write_build

    spec = load(pipeline)
    target = Path(out) if out else spec.base_dir / ".composer" / spec.name / "build"
    contexts, requests = write_build(spec, target)
    for ctx in contexts:
        click.echo(f"{ctx.hostname}: {ctx.path} (tag {ctx.tag})")
    click.echo(f"requests: {target / 'sagemaker'} (model {requests.model_name})")


COMMANDS = [build]
