"""SageMaker's limits and the rules that span fields: the spec's one rule book.

Each rule yields (location, message) pairs. A location is pydantic's: field names as written in
the file (`async`, not `async_inference`) and list indexes; a message says what was got and
what is allowed. The models run the rules (composer/spec/models.py), so a pipeline built in code
is refused with the same errors as `sm-compose validate` prints for a file; the loader maps each
location to FILE:LINE. Rules about one field's own value stay beside the field, in models.py.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypeGuard

if TYPE_CHECKING:
    from .models import Pipeline

Loc = tuple[str | int, ...]
Violation = tuple[Loc, str]

MAX_CONTAINERS = 15
MAX_IMAGE_URI = 255
MAX_ENV_ENTRIES = 100
MAX_ENV_STRING = 1024
MAX_ENV_TOTAL_BYTES = 32 * 1024
MAX_TAGS = 50
MAX_SECURITY_GROUPS = 5
MAX_SUBNETS = 16
MULTI_MODEL_ENV = "SAGEMAKER_MULTI_MODEL"
#: What a container's `batching:` becomes (read by the runtime, composer/serving/environment.py).
BATCH_SIZE_ENV = "COMPOSER_MAX_BATCH_SIZE"
BATCH_DELAY_ENV = "COMPOSER_MAX_BATCH_DELAY_MS"
MAX_BATCH_SIZE = 1024
MAX_BATCH_DELAY_MS = 10_000
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz")

# CreateTransformJob's limits (the `transform:` block and `sm-compose transform`'s options).
MAX_PAYLOAD_MB = 100
#: MaxConcurrentTransforms x MaxPayloadInMB may not exceed this.
MAX_TRANSFORM_PRODUCT = 100
MAX_INVOCATIONS_TIMEOUT = 3600
DEFAULT_INVOCATIONS_TIMEOUT = 600
MAX_INVOCATIONS_RETRIES = 3
DEFAULT_INVOCATIONS_RETRIES = 3

#: Where SageMaker lists what each hosting option supports: multi-model endpoints are real-time
#: only, and combine with serial inference pipelines but not with multi-container (Direct) ones.
FEATURES = "see SageMaker's supported-features table"


# --- counts: checked beside the items' own validation, so neither hides the other -------------


def _is_list(value: object) -> TypeGuard[Sequence[object]]:
    return isinstance(value, Sequence) and not isinstance(value, str | bytes)


def too_many_containers(items: object) -> Iterator[Violation]:
    if _is_list(items) and len(items) > MAX_CONTAINERS:
        yield (
            (),
            f"got {len(items)} containers; should have at most {MAX_CONTAINERS} "
            "(SageMaker's limit per model)",
        )


def too_many_entries(environment: object, multi_model: bool) -> Iterator[Violation]:
    """A container's environment; multi_model adds SAGEMAKER_MULTI_MODEL, which counts too."""
    if not isinstance(environment, Mapping):
        return
    added = 1 if multi_model and MULTI_MODEL_ENV not in environment else 0
    if len(environment) + added > MAX_ENV_ENTRIES:
        also = f" (plus {MULTI_MODEL_ENV}, which multi_model adds)" if added else ""
        yield (
            (),
            f"got {len(environment)} entries{also}; SageMaker allows at most {MAX_ENV_ENTRIES}",
        )


def too_many_tags(tags: object) -> Iterator[Violation]:
    if isinstance(tags, Mapping) and len(tags) > MAX_TAGS:
        yield ((), f"got {len(tags)} tags; at most {MAX_TAGS} are allowed")


def too_many_items(items: object, limit: int) -> Iterator[Violation]:
    if _is_list(items) and len(items) > limit:
        yield ((), f"got {len(items)} items; should have at most {limit}")


def duplicate_hostnames(items: object) -> Iterator[Violation]:
    """Hostnames given twice, located at the second; items are mappings or Containers.

    It runs on the raw list too (when the list has other errors), so an item that fails for
    another reason still counts with its hostname.
    """
    if not _is_list(items):
        return
    seen: dict[str, int] = {}
    for index, item in enumerate(items):
        hostname = (
            item.get("hostname") if isinstance(item, Mapping) else getattr(item, "hostname", None)
        )
        if not isinstance(hostname, str):
            continue
        first = seen.setdefault(hostname, index)
        if first != index:
            yield (
                (index, "hostname"),
                f"got {hostname!r} again (also containers[{first}]); hostnames must be unique",
            )


# --- the pipeline's rules: run once every field is valid ------------------------------------


def pipeline_rules(pipeline: Pipeline) -> Iterator[Violation]:
    """SageMaker's rules across the pipeline's fields, each reported where it applies."""
    for loc, message in duplicate_hostnames(pipeline.containers):
        yield ("containers", *loc), message
    if pipeline.mode == "Direct" and len(pipeline.containers) < 2:
        yield (
            ("mode",),
            "got Direct with 1 container; Direct needs 2 to 15 containers "
            "(a single container is invoked without a hostname)",
        )
    if pipeline.async_inference is not None and pipeline.is_multi_container:
        yield (
            ("async",),
            f"got async with {len(pipeline.containers)} containers ({pipeline.mode}); "
            "asynchronous inference needs a single-container pipeline (SageMaker supports "
            "neither Direct nor Serial multi-container endpoints for async)",
        )
    if pipeline.transform is not None and pipeline.mode == "Direct":
        yield (
            ("transform",),
            "got transform with a Direct pipeline; batch transform needs a Serial or "
            "single-container pipeline (SageMaker's Direct multi-container endpoints are "
            "real-time only)",
        )
    yield from _multi_model_rules(pipeline)
    yield from _batching_rules(pipeline)
    total = sum(len(k) + len(v) for c in pipeline.containers for k, v in c.model_env.items())
    if total > MAX_ENV_TOTAL_BYTES:
        yield (
            ("containers",),
            f"got {total} bytes of environment keys and values in all; SageMaker allows at "
            f"most {MAX_ENV_TOTAL_BYTES} per model",
        )


def batch_transform_refusal(pipeline: Pipeline) -> str | None:
    """Why SageMaker runs no batch transform of this pipeline (whatever its spec says), or None."""
    if pipeline.mode == "Direct" and pipeline.is_multi_container:
        return (
            f"{pipeline.name}: batch transform needs a Serial or single-container pipeline; got "
            f"mode Direct with {len(pipeline.containers)} containers. SageMaker serves "
            "multi-container models with direct invocation in real time only (no batch "
            "transform, no asynchronous inference)"
        )
    return None


def _multi_model_rules(pipeline: Pipeline) -> Iterator[Violation]:
    """SageMaker's rules for multi-model containers."""
    multi = [i for i, c in enumerate(pipeline.containers) if c.multi_model]
    if len(multi) > 1:
        yield (
            ("containers", multi[1], "multi_model"),
            f"got {len(multi)} multi-model containers "
            f"({', '.join(f'containers[{i}]' for i in multi)}); SageMaker allows at most one "
            "multi-model container in a pipeline",
        )
    for index, container in enumerate(pipeline.containers):
        flag = container.env.get(MULTI_MODEL_ENV)
        if flag is None or (flag == "true") == container.multi_model:
            continue
        yield (
            ("containers", index, "environment", MULTI_MODEL_ENV),
            f"got {MULTI_MODEL_ENV}={flag!r} with multi_model: "
            f"{str(container.multi_model).lower()}; set "
            "multi_model instead (it sets this variable, the image label and Mode: "
            "MultiModel together)",
        )
    if not multi:
        return
    first = multi[0]
    if pipeline.mode == "Direct" and pipeline.is_multi_container:
        yield (
            ("containers", first, "multi_model"),
            "got multi_model: true in a Direct pipeline; SageMaker does not support "
            "multi-model containers in multi-container endpoints with direct invocation "
            f"({FEATURES}); use a Serial pipeline or a single-container one",
        )
    if pipeline.async_inference is not None and not pipeline.is_multi_container:
        yield (
            ("async",),
            f"got async with a multi-model container (containers[{first}]); SageMaker's "
            f"asynchronous inference does not support multi-model endpoints ({FEATURES}); "
            "drop async or multi_model",
        )
    if pipeline.transform is not None and pipeline.mode != "Direct":
        yield (
            ("transform",),
            f"got transform with a multi-model container (containers[{first}]); SageMaker's "
            f"batch transform does not support multi-model endpoints ({FEATURES}); drop "
            "transform or multi_model",
        )
    for index in multi:
        if pipeline.containers[index].model_data is None:
            yield (
                ("containers", index, "multi_model"),
                "got multi_model: true without model_data; a multi-model container needs "
                "model_data: the folder or s3:// prefix its .tar.gz models are loaded from",
            )


def _batching_rules(pipeline: Pipeline) -> Iterator[Violation]:
    """`batching:` sets two variables of its own; it does not mix with them or multi-model."""
    for index, container in enumerate(pipeline.containers):
        if container.batching is None:
            continue
        for name in (BATCH_SIZE_ENV, BATCH_DELAY_ENV):
            if name in container.env:
                yield (
                    ("containers", index, "environment", name),
                    f"got {name}={container.env[name]!r} with batching; set "
                    "batching's max_batch_size and max_delay_ms instead (it sets this variable)",
                )
        if container.multi_model:
            yield (
                ("containers", index, "batching"),
                "got batching with multi_model: true; a multi-model container does not batch "
                "(its requests go to different models); drop batching or multi_model",
            )
        if len(container.model_env) > MAX_ENV_ENTRIES:
            yield (
                ("containers", index, "batching"),
                f"got {len(container.model_env)} environment entries with the two batching "
                f"adds; SageMaker allows at most {MAX_ENV_ENTRIES}",
            )


# --- the local files a pipeline names, relative to its file (else the working directory) ----


def file_rules(pipeline: Pipeline) -> Iterator[Violation]:
    """Build folders hold an inference.py; local model data exists and has the right shape."""
    for index, container in enumerate(pipeline.containers):
        if container.build is not None:
            folder = pipeline.resolve(container.build)
            if not folder.is_dir():
                yield (
                    ("containers", index, "build"),
                    f"got {container.build!r}, which is not a folder (looked at {folder})",
                )
            elif not (folder / "inference.py").is_file():
                yield (
                    ("containers", index, "build"),
                    f"got {container.build!r}, which has no inference.py; a container folder "
                    "holds inference.py and requirements.txt",
                )
        data = container.model_data
        if data is None or data.startswith("s3://"):
            continue
        path = pipeline.resolve(data)
        loc: Loc = ("containers", index, "model_data")
        if path.is_dir():
            continue
        if container.multi_model:
            yield loc, _not_a_prefix(data, path)
        elif not path.is_file():
            yield (
                loc,
                f"got {data!r}, which does not exist (looked at {path}); give a .tar.gz, "
                "a folder or an s3:// URI",
            )
        elif not path.name.endswith(ARCHIVE_SUFFIXES):
            yield loc, f"got {data!r}; a model_data file is a .tar.gz archive"


def _not_a_prefix(data: str, path: Path) -> str:
    """A multi-model container's local model_data that is not a folder."""
    if not path.exists():
        return (
            f"got {data!r}, which does not exist (looked at {path}); a multi-model "
            "container's model_data is a folder of .tar.gz archives or an s3:// prefix"
        )
    if path.name.endswith(ARCHIVE_SUFFIXES):
        return (
            f"got {data!r}, one archive; a multi-model container takes a folder (or an "
            "s3:// prefix) of .tar.gz archives, one per model: put the archive in a "
            "folder and give the folder"
        )
    return (
        f"got {data!r}, which is not a folder; a multi-model container's model_data "
        "is a folder of .tar.gz archives or an s3:// prefix"
    )
