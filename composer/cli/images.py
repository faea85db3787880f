"""`sm-compose build` (files, or real images with --engine) and `sm-compose push`."""

from __future__ import annotations

from pathlib import Path

import click

from ._common import Spinner, friendly, load, pipeline_arg

base_image_option = click.option(
    "--base-image",
    default=None,
    help="FROM of every image (default $COMPOSER_BASE_IMAGE, else the spec's base_image).",
)
engine_choice = click.Choice(["podman", "docker"])


def _milestone(message: str) -> bool:
    """What is worth a line of its own where there is no spinner."""
    return ": building " in message or ": pushing " in message or ": pushed " in message


@click.command()
@pipeline_arg
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    default=None,
    help="Write build contexts and SageMaker request documents here (files only).",
)
@click.option("--engine", type=engine_choice, default=None, help="Also build the images.")
@click.option("--tag", default=None, help="Image tag (default: the context's content hash).")
@base_image_option
@friendly
def build(
    pipeline: str, out: str | None, engine: str | None, tag: str | None, base_image: str | None
) -> None:
    """Write every build context and the SageMaker requests of PIPELINE; with --engine, build."""
    from ..render.context import write_build

    spec = load(pipeline)
    if engine is None:
        if tag or base_image:
            from ..errors import UsageError

            raise UsageError("--tag and --base-image build images: give --engine podman|docker")
        target = Path(out) if out else spec.state_dir / "build"
        contexts, requests = write_build(spec, target)
        for ctx in contexts:
            click.echo(f"{ctx.hostname}: {ctx.path} (tag {ctx.tag})")
        click.echo(f"requests: {target / 'sagemaker'} (model {requests.model_name})")
        return
    from ..runners.engine import Engine
    from ..runners.oci import build_images

    with Spinner("building images", keep=_milestone) as spinner:
        images = build_images(
            Engine(engine), spec, base_image=base_image, tag=tag, progress=spinner.say
        )
    for image in images:
        what = "built" if image.built else "up to date"
        click.echo(f"{image.hostname}: {image.ref} ({what}; SageMaker labels present)")


@click.command()
@pipeline_arg
@click.option("--engine", type=engine_choice, default="podman", show_default=True)
@click.option(
    "--registry",
    default=None,
    help="HOST[:PORT]/PREFIX to push to instead of ECR (repositories <prefix>/<repo>).",
)
@click.option(
    "--tls-verify/--no-tls-verify",
    default=True,
    help="TLS for --registry (Podman; Docker's daemon decides per registry).",
)
@click.option("--region", default=None, help="ECR region (default: the spec's, else the chain).")
@base_image_option
@friendly
def push(
    pipeline: str,
    engine: str,
    registry: str | None,
    tls_verify: bool,
    region: str | None,
    base_image: str | None,
) -> None:
    """Build and push every image of PIPELINE; record URIs with digests in its lock file."""
    from ..aws.images import push_images

    spec = load(pipeline)
    with Spinner("building images", keep=_milestone) as spinner:
        lock, pushed = push_images(
            spec,
            engine,
            registry=registry,
            tls_verify=tls_verify,
            region=region,
            base_image=base_image,
            progress=spinner.say,
        )
    for hostname, uri in pushed.items():
        click.echo(f"{hostname}: {uri}")
    click.echo(f"lock file: {lock}")


COMMANDS = [build, push]
