"""`sm-compose transform`: a batch transform of files, locally or as a SageMaker job."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from ..batch import TransformOptions
    from ..spec import Pipeline

from ._common import engine_option, friendly, load, pipeline_arg, runner_for


@click.command()
@pipeline_arg
@click.option(
    "--input",
    "input_location",
    required=True,
    help="A file, a folder (every file is one object) or an s3:// prefix.",
)
@click.option(
    "--output",
    "output_location",
    required=True,
    help="A folder or an s3:// prefix; each object's output is <name>.out there.",
)
@click.option("--content-type", default=None, help="ContentType of every request.")
@click.option("--accept", default=None, help="Accept of every request (the last container's).")
@click.option(
    "--split-type",
    type=click.Choice(["None", "Line"]),
    default="None",
    show_default=True,
    help="Line: every line is a record; None: the whole object is one.",
)
@click.option(
    "--strategy",
    type=click.Choice(["MultiRecord", "SingleRecord"]),
    default=None,
    help="BatchStrategy (default: the container's, else MultiRecord).",
)
@click.option(
    "--max-payload-mb",
    type=click.IntRange(0, 100),
    default=None,
    help="MaxPayloadInMB, 0 to 100 (default: the container's, else 6).",
)
@click.option(
    "--max-concurrent",
    type=click.IntRange(min=1),
    default=None,
    help="MaxConcurrentTransforms (default: the container's, else 1).",
)
@click.option(
    "--assemble-with",
    type=click.Choice(["None", "Line"]),
    default="None",
    show_default=True,
    help="Line: end every answer with a newline in the output.",
)
@click.option(
    "--compression",
    type=click.Choice(["None", "Gzip"]),
    default="None",
    show_default=True,
    help="Gzip: input objects are gzip-compressed.",
)
@click.option(
    "--invocations-timeout",
    type=click.IntRange(1, 3600),
    default=None,
    help="Seconds per request (ModelClientConfig; default the spec's, else 600).",
)
@click.option(
    "--invocations-max-retries",
    type=click.IntRange(0, 3),
    default=None,
    help="Retries of a request that failed on the server side (default the spec's, else 3).",
)
@engine_option
@click.option(
    "--on-sagemaker", is_flag=True, help="Run as a SageMaker transform job (CreateTransformJob)."
)
@click.option(
    "--dry-run", is_flag=True, help="With --on-sagemaker: print the requests, call nothing."
)
@click.option("--job-name", default=None, help="TransformJobName (default PIPELINE-TIME).")
@click.option("--instance-type", default=None, help="TransformResources.InstanceType.")
@click.option("--instance-count", type=click.IntRange(min=1), default=None)
@click.option("--output-kms-key-id", default=None, help="TransformOutput.KmsKeyId.")
@click.option("--no-wait", is_flag=True, help="With --on-sagemaker: return once created.")
@click.option(
    "--poll-interval",
    type=click.FloatRange(min=0.0),
    default=30.0,
    show_default=True,
    envvar="SM_COMPOSE_POLL_INTERVAL",
    help="Seconds between DescribeTransformJob calls.",
)
@friendly
def transform(
    pipeline: str,
    input_location: str,
    output_location: str,
    content_type: str | None,
    accept: str | None,
    split_type: str,
    strategy: str | None,
    max_payload_mb: int | None,
    max_concurrent: int | None,
    assemble_with: str,
    compression: str,
    invocations_timeout: int | None,
    invocations_max_retries: int | None,
    engine: str | None,
    on_sagemaker: bool,
    dry_run: bool,
    job_name: str | None,
    instance_type: str | None,
    instance_count: int | None,
    output_kms_key_id: str | None,
    no_wait: bool,
    poll_interval: float,
) -> None:
    """Run PIPELINE over every record of --input and write <object>.out files to --output.

    Output is written only for objects whose every record succeeded; failures are listed per
    object and record, and the exit status is 1 when any object failed.
    """
    from ..batch import TransformOptions
    from ..errors import UsageError

    spec = load(pipeline)
    spec.check_batch_transform()
    options = TransformOptions.from_spec(
        spec,
        content_type=content_type,
        accept=accept,
        split_type=split_type,
        strategy=strategy,
        max_payload_mb=max_payload_mb,
        max_concurrent=max_concurrent,
        assemble_with=assemble_with,
        compression=compression,
        invocations_timeout=invocations_timeout,
        invocations_max_retries=invocations_max_retries,
    )
    if on_sagemaker:
        _on_sagemaker(
            pipeline,
            options,
            input_location,
            output_location,
            dry_run=dry_run,
            job_name=job_name,
            instance_type=instance_type,
            instance_count=instance_count,
            output_kms_key_id=output_kms_key_id,
            wait=not no_wait,
            poll_interval=poll_interval,
        )
        return
    local_only = {
        "--dry-run": dry_run,
        "--job-name": job_name,
        "--instance-type": instance_type,
        "--instance-count": instance_count,
        "--output-kms-key-id": output_kms_key_id,
        "--no-wait": no_wait,
    }
    given = [k for k, v in local_only.items() if v]
    if given:
        raise UsageError(f"{', '.join(given)}: only with --on-sagemaker")
    _local(spec, options, input_location, output_location, engine)


def _local(
    spec: Pipeline,
    options: TransformOptions,
    input_location: str,
    output_location: str,
    engine: str | None,
) -> None:
    import asyncio  # here, not at the top: every other command starts ≈ 40 ms sooner

    from rich.console import Console

    from ..batch import transform_local
    from ..batch.progress import RichProgress

    runner = runner_for(engine)
    console = Console(stderr=True, highlight=False)
    with RichProgress(console) as progress:
        result = asyncio.run(
            transform_local(
                spec,
                options,
                input_location,
                output_location,
                runner=runner,
                progress=progress,
            )
        )
    for obj in result.objects:
        if obj.ok:
            click.echo(obj.output)
    for obj in result.failed:
        for failure in obj.failures:
            click.echo(f"failed: {failure}", err=True)
    click.echo(result.summary(), err=True)
    if result.failed:
        names = ", ".join(o.name for o in result.failed)
        click.echo(
            f"error: {len(result.failed)} object(s) failed, no output for: {names}", err=True
        )
        sys.exit(1)


def _on_sagemaker(
    pipeline_file: str,
    options: TransformOptions,
    input_location: str,
    output_location: str,
    *,
    dry_run: bool,
    job_name: str | None,
    instance_type: str | None,
    instance_count: int | None,
    output_kms_key_id: str | None,
    wait: bool,
    poll_interval: float,
) -> None:
    from ..aws.clients import create_clients, session_region
    from ..aws.deploy import Reporter
    from ..aws.plan import preflight
    from ..aws.transform import JobSettings, dry_run_document, run_transform_job

    spec = load(pipeline_file)
    settings = JobSettings(
        input_uri=input_location,
        output_uri=output_location,
        job_name=job_name,
        instance_type=instance_type,
        instance_count=instance_count,
        output_kms_key_id=output_kms_key_id,
    )
    plan = preflight(spec, pipeline_file, session_region(spec.aws.region))
    if dry_run:
        click.echo(json.dumps(dry_run_document(plan, options, settings), indent=2, default=str))
        return
    described = run_transform_job(
        plan,
        options,
        settings,
        create_clients(plan.region),
        Reporter(),
        wait=wait,
        poll_interval=poll_interval,
    )
    click.echo(
        f"{described['TransformJobName']}: {described['TransformJobStatus']} "
        f"(output {described.get('TransformOutput', {}).get('S3OutputPath', output_location)})"
    )


COMMANDS = [transform]
