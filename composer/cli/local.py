"""`sm-compose up`, `local` and `invoke`: endpoints on this machine, and calling them."""

from __future__ import annotations

import asyncio
import ipaddress
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import click

from ..redaction import redact_text
from ..sagemaker_facts import DEFAULT_REGION
from ._common import Spinner, engine_option, friendly, load, pipeline_arg, runner_for

if TYPE_CHECKING:
    from collections.abc import Callable

    from ..client import EndpointClient, InvokeResult
    from ..gateway.trace import Trace
    from ..render.builds import BuiltFrom
    from ..spec import Pipeline


def trace_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """`--trace` and `--trace-bodies`, the same on `up` and `local`."""
    command = click.option(
        "--trace-bodies",
        is_flag=True,
        help="Record request and answer bodies in the trace (cut to 1 KiB), and print them with "
        "--trace. Off by default: bodies can hold data you do not want written anywhere.",
    )(command)
    return click.option(
        "--trace",
        "trace",
        is_flag=True,
        help="Print one line per hop (each container call of each invocation) as it happens.",
    )(command)


@click.command()
@pipeline_arg
@click.option("--port", default=8080, show_default=True, help="Gateway port.")
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Gateway address. Anything but loopback makes the endpoint reachable from other "
    "machines, with no authentication; up warns when it does.",
)
@click.option(
    "--startup-timeout",
    type=click.FloatRange(min=1.0),
    default=None,
    help="Seconds each container has to pass /ping; overrides "
    "endpoint.startup_health_check_timeout (default 480, SageMaker's 8 minutes).",
)
@click.option(
    "--watch",
    is_flag=True,
    help="Reload on each saved change of a build: container's folder or of PIPELINE: only "
    "what changed restarts, beside what serves, and traffic switches once it passes /ping.",
)
@trace_options
@engine_option
@friendly
def up(
    pipeline: str,
    port: int,
    host: str,
    startup_timeout: float | None,
    watch: bool,
    trace: bool,
    trace_bodies: bool,
    engine: str | None,
) -> None:
    """Run every container of PIPELINE and a SageMaker-compatible gateway, in the foreground."""
    from ..localsm import pipeline_with_control_plane
    from ..runners.endpoint import serve_until_stopped

    spec = load(pipeline)
    warn_if_exposed(host, port)
    with Spinner("preparing containers") as spinner:

        def out(message: str) -> None:
            spinner.stop()  # from the first container's line on, the output is the log
            print(message, flush=True)

        endpoint = pipeline_with_control_plane(
            spec,
            host=host,
            port=port,
            runner=runner_for(engine),
            out=out,
            known_images=_own_lock(spec),
            progress=spinner.say,
            startup_timeout=startup_timeout,
            trace=hop_trace(trace, trace_bodies, out),
            watch=pipeline if watch else None,
        )
        sys.exit(asyncio.run(serve_until_stopped(endpoint, out=out)))


@click.command("local")
@click.option(
    "--port", default=8080, show_default=True, help="Port of the control plane and runtime."
)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Listening address. Anything but loopback makes it reachable from other machines, "
    "with no authentication; local warns when it does.",
)
@click.option(
    "--pipeline",
    "pipelines",
    multiple=True,
    type=click.Path(dir_okay=False),
    help="A pipeline whose lock file (PIPELINE.lock.json, written by `sm-compose push`, here or "
    "elsewhere) maps pushed image URIs to its build: folders: a model naming one runs as local "
    "processes from that folder. Repeat for more pipelines.",
)
@click.option(
    "--watch",
    is_flag=True,
    help="Reload on each saved change of a build folder an endpoint's containers run from "
    "(build records, --pipeline lock files): every copy running from it restarts beside what "
    "serves, and traffic switches once it passes /ping.",
)
@trace_options
@engine_option
@friendly
def local(
    port: int,
    host: str,
    pipelines: tuple[str, ...],
    watch: bool,
    trace: bool,
    trace_bodies: bool,
    engine: str | None,
) -> None:
    """An empty local SageMaker: CreateModel, CreateEndpoint, InvokeEndpoint... on one port.

    Point existing code at it with AWS_ENDPOINT_URL_SAGEMAKER and
    AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME. Images that `sm-compose build` made, or that the lock
    file of a --pipeline maps to its build folder, run as local processes; any other image needs
    --engine. State lives in memory; Ctrl-C stops everything.
    """
    from ..localsm import serve_local

    warn_if_exposed(host, port)

    def out(message: str) -> None:
        print(message, flush=True)

    known = _lock_files(pipelines, out)
    serving = serve_local(
        host=host,
        port=port,
        engine_runner=runner_for(engine),
        out=out,
        trace=hop_trace(trace, trace_bodies, out),
        known_images=known,
        watch=watch,
    )
    sys.exit(asyncio.run(serving))


def _lock_files(pipelines: tuple[str, ...], out: Callable[[str], None]) -> dict[str, BuiltFrom]:
    """`--pipeline FILE`...: the image URIs each one's lock file maps to its build: folders."""
    from ..aws.lockfile import lock_path, locked_builds
    from ..errors import UsageError

    known: dict[str, BuiltFrom] = {}
    for file in pipelines:
        spec = load(file)
        lock = lock_path(spec.source or Path(file))
        if not lock.is_file():
            raise UsageError(
                f"--pipeline {file}: got no lock file (looked for {lock}); `sm-compose push "
                f"{file}` writes it. Images `sm-compose build` made on this machine need no "
                "--pipeline"
            )
        found = locked_builds(spec)
        if not found:
            built = [c.hostname for c in spec.containers if c.build is not None]
            raise UsageError(
                f"--pipeline {file}: {lock} maps none of its build: containers "
                f"({', '.join(built) or 'it has none'}); run `sm-compose push {file}` again"
            )
        hosts = ", ".join(sorted(b.hostname for b in found.values()))
        out(f"sm-compose: {lock}: {hosts} run as local processes from their build: folders")
        known.update(found)
    return known


def _own_lock(spec: Pipeline) -> dict[str, BuiltFrom]:
    """`up`'s own pipeline's lock file, if it has one: a model created beside `up` that names
    one of its pushed URIs runs from the build: folder, as with `local --pipeline`."""
    from ..aws.lockfile import locked_builds
    from ..errors import UsageError

    try:
        return locked_builds(spec)
    except UsageError as exc:  # `up` itself needs no lock file: say so, and go on
        click.echo(f"warning: {exc}", err=True)
        return {}


def hop_trace(printed: bool, bodies: bool, out: Callable[[str], None]) -> Trace:
    """The gateway's trace for --trace (each hop printed) and --trace-bodies (bodies kept)."""
    from ..gateway.trace import Trace, line

    return Trace(bodies=bodies, on_hop=(lambda hop: out(line(hop))) if printed else None)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name, or "" (every address)


def warn_if_exposed(host: str, port: int) -> None:
    """Say so when the gateway is reachable from other machines: it checks no credentials."""
    if is_loopback(host):
        return
    where = host or "every address"
    click.echo(
        f"warning: the gateway listens on {where} port {port}, reachable from other machines. "
        "It has no authentication (no AWS signature is checked): anyone who can reach it can "
        "invoke the endpoint. The containers stay on 127.0.0.1. Leave out --host (loopback) "
        "unless you mean to share it.",
        err=True,
    )


@click.command()
@click.argument("target_endpoint", metavar="PIPELINE_OR_ENDPOINT")
@click.option("--target", "target", default=None, help="TargetContainerHostname (Direct).")
@click.option(
    "--target-model",
    default=None,
    help="TargetModel of a multi-model container: the archive's path under its model data "
    "prefix (e.g. en-rules.tar.gz).",
)
@click.option("--content-type", default="application/json", show_default=True)
@click.option("--accept", default=None, help="Accept of the (last) container.")
@click.option("--custom-attributes", default=None, help="X-Amzn-SageMaker-Custom-Attributes.")
@click.option("--data", default=None, help="The request body as text.")
@click.option(
    "--file",
    "file",
    type=click.Path(dir_okay=False, allow_dash=True),
    default=None,
    help="Read the body from this file ('-' for standard input).",
)
@click.option(
    "--endpoint-url",
    default=None,
    help="Runtime endpoint URL, e.g. http://127.0.0.1:8080 for `sm-compose up`. Default: "
    "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME, else AWS.",
)
@click.option("--local", is_flag=True, help="Shorthand for --endpoint-url http://127.0.0.1:8080.")
@click.option("--region", default=None, help="AWS region (default: the AWS chain).")
@click.option(
    "--async",
    "is_async",
    is_flag=True,
    help="InvokeEndpointAsync: print where the answer will be (and, with --wait, the answer).",
)
@click.option(
    "--input-location",
    default=None,
    help="With --async: the s3:// URI of the request body (the local gateway also reads a "
    "local path; --file PATH stands for it there).",
)
@click.option("--inference-id", default=None, help="InferenceId (default: a new UUID).")
@click.option("--wait", is_flag=True, help="With --async: wait for the answer and print it.")
@click.option(
    "--wait-timeout",
    type=click.FloatRange(min=0.0),
    default=900.0,
    show_default=True,
    help="With --async --wait: give up after this many seconds.",
)
@friendly
def invoke(
    target_endpoint: str,
    target: str | None,
    target_model: str | None,
    content_type: str,
    accept: str | None,
    custom_attributes: str | None,
    data: str | None,
    file: str | None,
    endpoint_url: str | None,
    local: bool,
    region: str | None,
    is_async: bool,
    input_location: str | None,
    inference_id: str | None,
    wait: bool,
    wait_timeout: float,
) -> None:
    """Invoke an endpoint (by pipeline file or endpoint name) and print the response body."""
    from ..client import InvocationError
    from ..errors import UsageError

    name = target_endpoint
    if target_endpoint.endswith((".yaml", ".yml")) or Path(target_endpoint).is_file():
        spec = load(target_endpoint)
        name = spec.name
        region = region or spec.aws.region
    if local and endpoint_url is None:
        endpoint_url = "http://127.0.0.1:8080"
    client = _client(name, endpoint_url, region)
    if target_model is not None and (is_async or input_location is not None):
        raise UsageError(
            "--target-model: not with --async (SageMaker's asynchronous inference serves "
            "single-model endpoints only)"
        )
    try:
        if is_async or input_location is not None:
            result = _invoke_async(
                client,
                input_location=input_location,
                file=file,
                data=data,
                target=target,
                content_type=content_type,
                accept=accept,
                custom_attributes=custom_attributes,
                inference_id=inference_id,
                wait=wait,
                wait_timeout=wait_timeout,
            )
        else:
            if wait:
                raise UsageError("--wait: only with --async")
            result = client.invoke(
                _request_body(data, file),
                target=target,
                content_type=content_type,
                accept=accept,
                custom_attributes=custom_attributes,
                target_model=target_model,
            )
    except InvocationError as exc:
        click.echo(redact_text(f"error: {exc}"), err=True)
        sys.exit(1)
    if result is not None:
        sys.stdout.buffer.write(result.body)
        if not result.body.endswith(b"\n"):
            sys.stdout.buffer.write(b"\n")


def _request_body(data: str | None, file: str | None) -> bytes:
    """--data, --file PATH, or standard input (--file - or neither, when it is not a terminal)."""
    from ..errors import UsageError

    if sum(x is not None for x in (data, file)) > 1:
        raise UsageError("got both --data and --file; give one body source")
    if data is not None:
        return data.encode()
    if file == "-" or file is None:
        if file is None and sys.stdin.isatty():
            raise UsageError("no request body: give --data TEXT, --file PATH or - (stdin)")
        return sys.stdin.buffer.read()
    return Path(file).read_bytes()


def _client(name: str, endpoint_url: str | None, region: str | None) -> EndpointClient:
    """boto3's client as for AWS; for a gateway on this machine, no AWS account is needed.

    The local gateway checks no signature, so where the AWS chain has no region or credentials
    (a fresh machine), a loopback endpoint gets us-east-1 and placeholder keys.
    """
    import boto3

    from ..client import EndpointClient

    host = urlparse(
        endpoint_url or os.environ.get("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", "")
    ).hostname
    if host not in ("127.0.0.1", "localhost", "::1"):
        return EndpointClient(name, endpoint_url=endpoint_url, region_name=region)
    session = boto3.Session()
    placeholder = None if session.get_credentials() is not None else "local"
    runtime = session.client(
        "sagemaker-runtime",
        endpoint_url=endpoint_url,
        region_name=region or session.region_name or DEFAULT_REGION,
        aws_access_key_id=placeholder,
        aws_secret_access_key=placeholder,
    )
    return EndpointClient(name, client=runtime)


def _invoke_async(
    client: EndpointClient,
    *,
    input_location: str | None,
    file: str | None,
    data: str | None,
    target: str | None,
    content_type: str,
    accept: str | None,
    custom_attributes: str | None,
    inference_id: str | None,
    wait: bool,
    wait_timeout: float,
) -> InvokeResult | None:
    """InvokeEndpointAsync: the body is already stored; print where the answer goes (and, with
    --wait, return the answer)."""
    from ..errors import UsageError

    if data is not None:
        raise UsageError(
            "--data: an asynchronous request reads its body from --input-location; store the "
            "body first (or give --file PATH to the local gateway)"
        )
    if target is not None:
        raise UsageError(
            "--target: asynchronous endpoints have a single container, so there is no "
            "TargetContainerHostname to give"
        )
    if input_location is None:
        if file is None or file == "-":
            raise UsageError("--async needs --input-location s3://BUCKET/KEY (or --file PATH)")
        input_location = str(Path(file).resolve())
    elif file is not None:
        raise UsageError("got both --input-location and --file; give one")
    accepted = client.invoke_async(
        input_location,
        content_type=content_type,
        accept=accept,
        custom_attributes=custom_attributes,
        inference_id=inference_id,
    )
    click.echo(f"inference {accepted.inference_id}: output {accepted.output_location}", err=True)
    if not wait:
        click.echo(accepted.output_location)
        return None
    return client.wait_async(accepted, timeout=wait_timeout)


COMMANDS = [up, local, invoke]
