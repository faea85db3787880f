"""`sm-compose transform --on-sagemaker`: the pipeline's model as a SageMaker batch transform job.

The job runs the model deploy would create (the same content-hashed name from
`render_requests`); when no such model exists yet it is created the way deploy creates it
(model data uploaded first). The request is `composer.render.transform`'s.
"""

from __future__ import annotations

from typing import Any

from ..batch.params import TransformOptions
from ..polling import Wait, poll_until
from ..render.transform import JobSettings, create_transform_job_request
from .calls import DeployError, calling
from .clients import Clients
from .model import create_model, model_bucket, model_exists, upload_model_data
from .plan import Plan
from .report import Reporter

DONE = {"Completed", "Failed", "Stopped"}
#: DescribeTransformJob every 30 s for at most 6 hours (the CLI's defaults).
JOB_WAIT = Wait(interval=30.0, timeout=6 * 3600.0)


def ensure_model(plan: Plan, clients: Clients, reporter: Reporter) -> str:
    """The name of the pipeline's model on SageMaker, created (as deploy would) if missing."""
    bucket = model_bucket(plan, clients, reporter)
    requests = plan.requests(bucket)
    name = requests.model_name
    if model_exists(clients, name):
        reporter.say(f"model {name}: found")
        return name
    upload_model_data(plan, clients, bucket, reporter)
    create_model(clients, requests)
    reporter.say(f"model {name}: created")
    return name


def describe_job(clients: Clients, name: str) -> dict[str, Any]:
    with calling(f"DescribeTransformJob {name}"):
        return dict(clients.sagemaker.describe_transform_job(TransformJobName=name))


def wait_for_job(
    clients: Clients, name: str, reporter: Reporter, wait: Wait = JOB_WAIT
) -> dict[str, Any]:
    """Poll DescribeTransformJob until the job ends; a failed or stopped job raises."""

    def timed_out(described: dict[str, Any]) -> DeployError:
        return DeployError(
            f"transform job {name}: still {described['TransformJobStatus']} after "
            f"{wait.timeout:.0f} s; it keeps running (stop it with aws sagemaker "
            "stop-transform-job)"
        )

    with reporter.waiting(f"transform job {name}") as update:
        described = poll_until(
            lambda: describe_job(clients, name),
            lambda described: described["TransformJobStatus"] in DONE,
            wait,
            timed_out=timed_out,
            on_poll=lambda described, elapsed: update(
                str(described["TransformJobStatus"]), elapsed
            ),
        )
    status = described["TransformJobStatus"]
    if status != "Completed":
        reason = described.get("FailureReason", "no reason given")
        raise DeployError(f"transform job {name}: {status}: {reason}")
    return described


def run_transform_job(
    plan: Plan,
    options: TransformOptions,
    settings: JobSettings,
    clients: Clients,
    reporter: Reporter,
    *,
    wait: Wait | None = JOB_WAIT,
) -> dict[str, Any]:
    """Create the job (and the model if needed); return its last description (without
    `wait`, right after creating it)."""
    plan.pipeline.check_batch_transform()
    model = ensure_model(plan, clients, reporter)
    request = create_transform_job_request(plan.pipeline, model, options, settings)
    name = request["TransformJobName"]
    with calling(f"CreateTransformJob {name}"):
        clients.sagemaker.create_transform_job(**request)
    reporter.say(f"transform job {name}: created (model {model})")
    if wait is None:
        return describe_job(clients, name)
    return wait_for_job(clients, name, reporter, wait)
