"""`sm-compose deploy`, `delete`, `status` and `export`: the pipeline on Amazon SageMaker.

Region and credentials come from the standard AWS chain; AWS_ENDPOINT_URL_SAGEMAKER, _S3,
_APPLICATION_AUTO_SCALING and _STS point the clients elsewhere (moto, in the tests).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from ..aws.plan import Plan

from ._common import friendly, load, pipeline_arg
from ._waiting import no_wait_option, poll_option, seconds_option, wait_of

_poll = poll_option(15.0, "Seconds between DescribeEndpoint calls while waiting.")
_timeout = seconds_option(
    "--timeout", 3600.0, "Give up waiting after this many seconds (nothing is rolled back)."
)


def _plan(pipeline: str) -> Plan:
    from ..aws.clients import session_region
    from ..aws.plan import preflight

    spec = load(pipeline)
    return preflight(spec, pipeline, session_region(spec.aws.region))


@click.command()
@pipeline_arg
@click.option(
    "--dry-run",
    is_flag=True,
    help="Print every request deploy would send, as JSON, and call nothing.",
)
@no_wait_option
@_poll
@_timeout
@friendly
def deploy(
    pipeline: str, dry_run: bool, no_wait: bool, poll_interval: float, timeout: float
) -> None:
    """Upload model data and create or update PIPELINE's SageMaker endpoint; wait for InService."""
    from ..aws.plan import dry_run_document

    plan = _plan(pipeline)
    if dry_run:
        click.echo(json.dumps(dry_run_document(plan), indent=2))
        return
    from ..aws.clients import create_clients
    from ..aws.deploy import deploy as run_deploy
    from ._waiting import RichReporter

    reporter = RichReporter()
    outcome = run_deploy(
        plan,
        create_clients(plan.region),
        reporter,
        wait=wait_of(no_wait, poll_interval, timeout),
    )
    for item in outcome.deleted:
        reporter.say(f"removed {item}")
    click.echo(f"{outcome.endpoint}: {outcome.action}, {outcome.status}")


@click.command()
@pipeline_arg
@no_wait_option
@_poll
@_timeout
@friendly
def delete(pipeline: str, no_wait: bool, poll_interval: float, timeout: float) -> None:
    """Delete PIPELINE's endpoint, its scaling, endpoint configs and models (idempotent)."""
    from ..aws.clients import create_clients, session_region
    from ..aws.deploy import delete as run_delete
    from ..errors import UsageError
    from ._waiting import RichReporter

    spec = load(pipeline)
    region = session_region(spec.aws.region)
    if region is None:
        raise UsageError("no AWS region: set aws.region, AWS_REGION or AWS_DEFAULT_REGION")
    outcome = run_delete(
        spec,
        create_clients(region),
        RichReporter(),
        wait=wait_of(no_wait, poll_interval, timeout),
    )
    for item in outcome.deleted:
        click.echo(f"deleted {item}")
    if outcome.action == "absent":
        click.echo(f"{spec.name}: nothing to delete")


@click.command()
@pipeline_arg
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@friendly
def status(pipeline: str, as_json: bool) -> None:
    """Show PIPELINE's endpoint: status, variants, instance counts, last failure reason."""
    from ..aws.clients import create_clients, session_region
    from ..aws.deploy import status as run_status
    from ..errors import UsageError

    spec = load(pipeline)
    region = session_region(spec.aws.region)
    if region is None:
        raise UsageError("no AWS region: set aws.region, AWS_REGION or AWS_DEFAULT_REGION")
    summary = run_status(spec, create_clients(region))
    if summary is None:
        if as_json:
            click.echo(json.dumps({"endpoint": spec.name, "status": None}))
        else:
            click.echo(f"{spec.name}: not deployed (in {region})")
        sys.exit(1)
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    click.echo(f"{summary['endpoint']}: {summary['status']} (config {summary['endpoint_config']})")
    if "failure_reason" in summary:
        click.echo(f"  last failure: {summary['failure_reason']}")
    for v in summary["variants"]:
        line = (
            f"  variant {v['name']}: {v['instance_type']} x {v['current_instance_count']} "
            f"(desired {v['desired_instance_count']}), model {v['model']}"
        )
        if "autoscaling" in v:
            line += f", autoscaling {v['autoscaling']['min']}-{v['autoscaling']['max']}"
        click.echo(line)


@click.command()
@pipeline_arg
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["cloudformation"]),
    default="cloudformation",
    show_default=True,
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write the template here instead of standard output.",
)
@friendly
def export(pipeline: str, fmt: str, output: str | None) -> None:
    """Print PIPELINE as a CloudFormation template (JSON): model, config, endpoint, scaling."""
    from ..aws.cloudformation import dumps, template

    plan = _plan(pipeline)
    text = dumps(template(plan))
    if output is None:
        click.echo(text, nl=False)
        return
    Path(output).write_text(text, encoding="utf-8")
    for upload in plan.uploads:
        click.echo(f"note: upload {upload.archive} to the key {upload.key} first", err=True)
    click.echo(f"wrote {output} ({fmt})", err=True)


COMMANDS = [deploy, delete, status, export]
