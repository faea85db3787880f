"""A SageMaker model (CreateModel) and a production variant as a pipeline the runners run.

One rule book: the model's containers become a `composer.spec.Pipeline`, so CreateModel is
refused with the same limits and messages as pipeline.yaml (composer/spec/rules.py), each
located by CreateModel's own member names (`Containers[1].Environment`, ...). Each container's
image decides how it runs here: an image that `sm-compose build` (or `push`) made runs as local
processes from its container folder (composer/render/builds.py), and so does one that a lock
file named to the local SageMaker maps back to its `build:` folder (`known`); any other runs
under an OCI engine, as SageMaker runs it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urlparse

from pydantic import ValidationError

from ..render.builds import BuiltFrom, built_from
from ..spec.models import Pipeline
from .errors import ApiError

Mode = Literal["Direct", "Serial"]

_CONTAINER_FIELDS = {
    "hostname": "ContainerHostname",
    "image": "Image",
    "build": "Image",
    "model_data": "ModelDataUrl",
    "environment": "Environment",
    "multi_model": "Mode",
}
_VARIANT_FIELDS = {
    "variant_name": "VariantName",
    "instance_type": "InstanceType",
    "instance_count": "InitialInstanceCount",
    "startup_health_check_timeout": "ContainerStartupHealthCheckTimeoutInSeconds",
}


@dataclass(frozen=True)
class ModelPlan:
    """A validated CreateModel: its containers as the spec has them, in order."""

    name: str
    mode: Mode
    primary: bool  # PrimaryContainer (else Containers)
    containers: tuple[dict[str, Any], ...]

    @property
    def engine_images(self) -> list[str]:
        """Images no build of ours made: they need an OCI engine."""
        return [c["image"] for c in self.containers if "image" in c]


def plan_model(
    document: dict[str, Any], work: Path, known: Mapping[str, BuiltFrom] | None = None
) -> ModelPlan:
    """CreateModel's containers checked by the spec's rule book; ApiError lists every problem.

    `known`: image references lock files map to their build folders (besides the record)."""
    name = str(document["ModelName"])
    primary = document.get("PrimaryContainer")
    listed = document.get("Containers")
    if (primary is None) == (listed is None):
        got = "both" if primary is not None else "neither"
        raise ApiError(f"got {got} of PrimaryContainer and Containers; give exactly one")
    definitions: list[dict[str, Any]] = [primary] if primary is not None else list(listed or [])
    if not definitions:
        raise ApiError("Containers: got an empty list; a model has 1 to 15 containers")
    mode: Mode = (document.get("InferenceExecutionConfig") or {}).get("Mode", "Serial")
    problems: list[str] = []
    named = [d.get("ContainerHostname") is not None for d in definitions]
    if mode == "Direct" and not all(named):
        problems.append(
            "Containers: Direct invocation needs a ContainerHostname on every container "
            "(callers pick one by TargetContainerHostname)"
        )
    elif primary is None and any(named) and not all(named):
        problems.append("Containers: give a ContainerHostname on all containers or on none")
    containers = []
    for index, definition in enumerate(definitions):
        where = "PrimaryContainer" if primary is not None else f"Containers[{index}]"
        try:
            containers.append(_container(definition, index, known))
        except ApiError as exc:
            problems.append(f"{where}: {exc.message}")
    plan = ModelPlan(name, mode, primary is not None, tuple(containers))
    if problems:
        raise ApiError("; ".join(problems))
    pipeline_for(plan, name, {}, work)  # the rule book's checks, located as CreateModel's
    return plan


def _container(
    definition: dict[str, Any], index: int, known: Mapping[str, BuiltFrom] | None
) -> dict[str, Any]:
    for unsupported in ("ModelPackageName", "ModelDataSource", "AdditionalModelDataSources"):
        if definition.get(unsupported) is not None:
            raise ApiError(f"{unsupported}: not supported by the local SageMaker; give Image")
    image = definition.get("Image")
    if image is None:
        raise ApiError("Image: got none; the local SageMaker runs a container from its Image")
    hostname = definition.get("ContainerHostname") or f"container-{index + 1}"
    spec: dict[str, Any] = {"hostname": hostname}
    found = built_from(image, known)
    if found is not None:
        spec["build"] = found.source
    else:
        spec["image"] = image
    if definition.get("Mode") == "MultiModel":
        spec["multi_model"] = True
    data = _model_data(definition.get("ModelDataUrl"))
    if data is not None:
        spec["model_data"] = data
    if definition.get("Environment"):
        spec["environment"] = dict(definition["Environment"])
    return spec


def _model_data(url: str | None) -> str | None:
    """s3:// as SageMaker reads it (through composer/storage.py); file:// and absolute paths,
    as the SDK's local mode accepts them."""
    if url is None or url.startswith("s3://"):
        return url
    if url.startswith("file://"):
        parsed = urlparse(url)
        if parsed.netloc not in ("", "localhost"):
            raise ApiError(f"ModelDataUrl: got {url!r}; a file:// URI names a path on this machine")
        return unquote(parsed.path)
    if url.startswith("/"):
        return url
    raise ApiError(
        f"ModelDataUrl: got {url!r}; the local SageMaker reads s3:// URIs (AWS_ENDPOINT_URL_S3 "
        "picks the S3), file:// URIs and absolute paths"
    )


def pipeline_for(
    plan: ModelPlan,
    endpoint_name: str,
    variant: dict[str, Any],
    folder: Path,
    async_config: dict[str, Any] | None = None,
    region: str | None = None,
) -> Pipeline:
    """The pipeline an endpoint's variant runs; its working files go under `folder`.

    `region`: the control plane's, so the gateway's log stream ARNs name it."""
    endpoint: dict[str, Any] = {}
    for field, member in _VARIANT_FIELDS.items():
        if variant.get(member) is not None:
            endpoint[field] = variant[member]
    spec = {
        "name": endpoint_name,
        "mode": plan.mode,
        "containers": [dict(c) for c in plan.containers],
        "endpoint": endpoint,
    }
    if region is not None:
        spec["aws"] = {"region": region}
    if async_config:
        output = async_config.get("OutputConfig") or {}
        client = async_config.get("ClientConfig") or {}
        spec["async"] = {
            k: v
            for k, v in {
                "output_path": output.get("S3OutputPath"),
                "failure_path": output.get("S3FailurePath"),
                "max_concurrent_invocations_per_instance": client.get(
                    "MaxConcurrentInvocationsPerInstance"
                ),
            }.items()
            if v is not None
        }
    try:
        return Pipeline.model_validate(spec, context={"source": folder / "pipeline.yaml"})
    except ValidationError as exc:
        located = [_located(plan, e["loc"], e["msg"]) for e in exc.errors()]
        raise ApiError("; ".join(located)) from None


def _located(plan: ModelPlan, loc: tuple[str | int, ...], message: str) -> str:
    """A spec error at CreateModel's (or the variant's) member names."""
    parts: list[str] = []
    head, rest = (loc[0], loc[1:]) if loc else ("", ())
    if head == "containers":
        if rest and isinstance(rest[0], int):
            parts.append("PrimaryContainer" if plan.primary else f"Containers[{rest[0]}]")
            rest = rest[1:]
            if rest:
                parts.append(_CONTAINER_FIELDS.get(str(rest[0]), str(rest[0])))
                rest = rest[1:]
        else:
            parts.append("Containers")
    elif head == "mode":
        parts.append("InferenceExecutionConfig.Mode")
    elif head == "name":
        parts.append("ModelName")
    elif head == "async":
        parts.append("AsyncInferenceConfig")
    elif head == "endpoint":
        parts.append("ProductionVariants")
        if rest:
            parts.append(_VARIANT_FIELDS.get(str(rest[0]), str(rest[0])))
            rest = rest[1:]
    elif head:
        parts.append(str(head))
    parts += [str(p) for p in rest]
    where = ".".join(parts)
    text = message.removeprefix("Value error, ")
    return f"{where}: {text}" if where else text
