"""Pydantic models of pipeline.yaml.

Every model forbids unknown keys and describes every field, so the JSON Schema printed by
`sm-compose schema` doubles as editor help. Limits mirror SageMaker's own (see docs/pipeline.md),
so a spec that validates here is not refused later by CreateModel. A field's own rules sit on
the field; the rules across fields, and the checks of the local files a pipeline names, are in
rules.py and run by `Pipeline`, so a pipeline built in code is refused as the loader refuses a
file.
"""

from __future__ import annotations

import re
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails, InitErrorDetails, PydanticCustomError, core_schema

from ..errors import UsageError
from ..sagemaker_facts import NAME_HELP, NAME_RULE
from . import rules
from .rules import (
    ARCHIVE_SUFFIXES,
    BATCH_DELAY_ENV,
    BATCH_SIZE_ENV,
    DEFAULT_INVOCATIONS_RETRIES,
    DEFAULT_INVOCATIONS_TIMEOUT,
    MAX_BATCH_DELAY_MS,
    MAX_BATCH_SIZE,
    MAX_CONTAINERS,
    MAX_ENV_ENTRIES,
    MAX_ENV_STRING,
    MAX_IMAGE_URI,
    MAX_INVOCATIONS_RETRIES,
    MAX_INVOCATIONS_TIMEOUT,
    MAX_PAYLOAD_MB,
    MAX_SECURITY_GROUPS,
    MAX_SUBNETS,
    MAX_TAGS,
    MAX_TRANSFORM_PRODUCT,
    MULTI_MODEL_ENV,
    Loc,
    Violation,
)

ENV_KEY_RULE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
ROLE_ARN_RULE = re.compile(r"arn:aws[a-z\-]*:iam::\d{12}:role/?[a-zA-Z_0-9+=,.@\-_/]+")
S3_URI_RULE = re.compile(r"s3://[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9](/.*)?")

DEFAULT_BASE_IMAGE = "python:3.11-slim"
#: The folder beside the pipeline file that holds its working files, one subfolder per pipeline.
STATE_DIR = ".composer"
#: The pydantic error type of a rule's violation; its message is the rule's, as written.
RULE_ERROR = "spec_rule"
BatchStrategy = Literal["MultiRecord", "SingleRecord"]
_PYDANTIC_ERRORS = frozenset(typing.get_args(core_schema.ErrorType))


class SpecValueError(ValueError):
    """A field's value is wrong; the message already says what was got and what is allowed."""


def check_name(value: str, what: str) -> str:
    if not NAME_RULE.fullmatch(value):
        raise SpecValueError(f"got {value!r}; {what} has {NAME_HELP}")
    return value


def _refusal(
    found: Iterable[tuple[Loc, str, Any]], own: Iterable[ErrorDetails] = ()
) -> ValidationError:
    """One ValidationError of pydantic's own errors and the rules' (location, message, input)."""
    errors = [_again(err) for err in own]
    errors += [
        InitErrorDetails(
            type=PydanticCustomError(RULE_ERROR, "{message}", {"message": message}),
            loc=loc,
            input=value,
        )
        for loc, message, value in found
    ]
    return ValidationError.from_exception_data("Pipeline", errors)


def _again(err: ErrorDetails) -> InitErrorDetails:
    """One of pydantic's errors, to be raised again beside the rules' own."""
    kind = err["type"]
    if kind not in _PYDANTIC_ERRORS:
        custom = PydanticCustomError(kind, "{message}", {"message": err["msg"]})
        return InitErrorDetails(type=custom, loc=err["loc"], input=err["input"])
    again = InitErrorDetails(type=kind, loc=err["loc"], input=err["input"])
    if "ctx" in err:
        again["ctx"] = err["ctx"]
    return again


def _with_counts(
    value: Any,
    handler: ValidatorFunctionWrapHandler,
    counts: Iterable[Violation],
    hidden: Callable[[], Iterable[Violation]] = lambda: (),
) -> Any:
    """Validate a list or map, refusing it for its items' errors and its count together.

    pydantic's max_length stops at the count, hiding every item's errors, so limits are counted
    here instead. `hidden` are rules that run later with the pipeline's and would be hidden by
    this field's failure: they join its errors (and are reported there, once, otherwise).
    """
    own: list[ErrorDetails] = []
    try:
        result = handler(value)
    except ValidationError as exc:
        own = exc.errors()
    found = list(counts)
    if own or found:
        found += hidden()
        raise _refusal(((loc, m, _value_at(value, loc)) for loc, m in found), own) from None
    return result


def _value_at(value: Any, loc: Loc) -> Any:
    """What a location points at, by field name or alias (the input shown in an error)."""
    for part in loc:
        if isinstance(value, BaseModel) and isinstance(part, str):
            fields = type(value).model_fields
            name = next((n for n, f in fields.items() if part in (n, f.alias)), None)
            value = getattr(value, name) if name is not None else None
        elif isinstance(value, Mapping):
            value = value.get(part)
        elif isinstance(value, Sequence) and isinstance(part, int) and part < len(value):
            value = value[part]
        else:
            return None
    return value


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=False)


def _env_key(key: str) -> str:
    if not ENV_KEY_RULE.fullmatch(key):
        raise SpecValueError(
            f"got key {key!r}; a key has letters, digits and underscores and does not start "
            "with a digit"
        )
    if len(key) > MAX_ENV_STRING:
        raise SpecValueError(f"got a key of {len(key)} characters; at most {MAX_ENV_STRING}")
    return key


def _env_value(value: str | int | float | bool) -> str:
    text = ("true" if value else "false") if isinstance(value, bool) else str(value)
    if len(text) > MAX_ENV_STRING:
        raise SpecValueError(f"got a value of {len(text)} characters; at most {MAX_ENV_STRING}")
    return text


EnvKey = Annotated[str, AfterValidator(_env_key)]
EnvValue = Annotated[
    str | int | float | bool,
    AfterValidator(_env_value),
    Field(description="A value; numbers and booleans are turned into strings."),
]


class Batching(_Spec):
    """Adaptive batching of concurrent requests, for a handler that defines batch_predict_fn."""

    max_batch_size: int = Field(
        default=32,
        ge=1,
        le=MAX_BATCH_SIZE,
        description=(
            "Most requests one batch_predict_fn call gets (COMPOSER_MAX_BATCH_SIZE); 1 turns "
            "batching off. Under load a batch is what queued while the previous one ran."
        ),
    )
    max_delay_ms: int = Field(
        default=0,
        ge=0,
        le=MAX_BATCH_DELAY_MS,
        description=(
            "Milliseconds a batch under load may wait for more requests, up to max_batch_size "
            "(COMPOSER_MAX_BATCH_DELAY_MS). A lone request to an idle worker never waits."
        ),
    )

    @property
    def env(self) -> dict[str, str]:
        return {BATCH_SIZE_ENV: str(self.max_batch_size), BATCH_DELAY_ENV: str(self.max_delay_ms)}


class Container(_Spec):
    """One container of the endpoint: one image, one hostname."""

    hostname: str = Field(
        description=(
            "ContainerHostname: unique within the pipeline; letters, digits and inner hyphens, "
            "at most 63. Direct endpoints are invoked by it (TargetContainerHostname)."
        )
    )
    build: str | None = Field(
        default=None,
        description=(
            "A container source folder (holding inference.py and requirements.txt), relative "
            "to this file. Exactly one of build and image."
        ),
    )
    image: str | None = Field(
        default=None,
        description="A prebuilt image URI (at most 255 characters). One of build and image.",
        max_length=MAX_IMAGE_URI,
    )
    multi_model: bool = Field(
        default=False,
        description=(
            "A multi-model container (Mode: MultiModel): it hosts many models, loaded on demand "
            "and picked per request by TargetModel. Adds the multi-models image label and "
            "SAGEMAKER_MULTI_MODEL=true; model_data is then a folder or s3:// prefix of .tar.gz "
            "archives. At most one per pipeline; not in Direct pipelines, async or transform."
        ),
    )
    model_data: str | None = Field(
        default=None,
        description=(
            "Model artifacts extracted to /opt/ml/model: a local .tar.gz, a local folder "
            "(both relative to this file), or an s3:// URI of a .tar.gz. With multi_model: the "
            "models' prefix: a local folder holding .tar.gz archives (subfolders allowed), or an "
            "s3://BUCKET/PREFIX/; TargetModel is an archive's path under it."
        ),
    )
    environment: dict[EnvKey, EnvValue] = Field(
        default_factory=dict,
        description=(
            "Environment variables of the container: at most 100; keys match "
            "[a-zA-Z_][a-zA-Z0-9_]*; keys and values at most 1024 characters; all containers' "
            "maps together at most 32 KB."
        ),
        json_schema_extra={"maxProperties": MAX_ENV_ENTRIES},
    )
    invocation_timeout: float = Field(
        default=60.0,
        gt=0,
        le=3600,
        description=(
            "Seconds the local gateway waits for this container's answer before a timeout "
            "ModelError (SageMaker's real-time limit is 60)."
        ),
    )
    batching: Batching | None = Field(
        default=None,
        description=(
            "Adaptive batching in the container runtime: concurrent requests to one worker go "
            "to the handler's batch_predict_fn together. Without it the runtime's defaults "
            "apply (batches of up to 32, no delay, when the handler defines batch_predict_fn)."
        ),
    )

    @field_validator("hostname")
    @classmethod
    def _hostname(cls, value: str) -> str:
        return check_name(value, "a SageMaker container hostname")

    @field_validator("environment", mode="wrap")
    @classmethod
    def _environment(
        cls, value: Any, handler: ValidatorFunctionWrapHandler, info: ValidationInfo
    ) -> dict[str, str]:
        multi_model = bool(info.data.get("multi_model"))
        result: dict[str, str] = _with_counts(
            value, handler, rules.too_many_entries(value, multi_model)
        )
        return result

    @field_validator("model_data")
    @classmethod
    def _model_data(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None or not value.startswith("s3://"):
            return value
        if info.data.get("multi_model"):
            if not S3_URI_RULE.fullmatch(value) or value.endswith(ARCHIVE_SUFFIXES):
                raise SpecValueError(
                    f"got {value!r}; a multi-model container's model_data is the S3 prefix "
                    "its archives are under, s3://BUCKET/PREFIX/, not one .tar.gz (TargetModel "
                    "names an archive under it)"
                )
            return value
        if not S3_URI_RULE.fullmatch(value) or not value.endswith(".tar.gz"):
            raise SpecValueError(
                f"got {value!r}; an S3 model_data is s3://BUCKET/KEY of a .tar.gz archive"
            )
        return value

    @model_validator(mode="after")
    def _one_source(self) -> Container:
        if (self.build is None) == (self.image is None):
            got = "both" if self.build is not None else "neither"
            raise SpecValueError(f"got {got} of build and image; give exactly one")
        return self

    @property
    def env(self) -> dict[str, str]:
        """The spec's environment map: strings only."""
        return {k: str(v) for k, v in self.environment.items()}

    @property
    def model_env(self) -> dict[str, str]:
        """The ContainerDefinition's Environment: a multi-model container's flag, batching's
        two variables, then the map.

        SageMaker injects SAGEMAKER_MULTI_MODEL=true itself; it is written out too so the image
        behaves the same wherever the definition is run.
        """
        flag = {MULTI_MODEL_ENV: "true"} if self.multi_model else {}
        batching = self.batching.env if self.batching is not None else {}
        return {**flag, **batching, **self.env}


class Autoscaling(_Spec):
    """Target tracking on invocations per instance, through Application Auto Scaling."""

    min_instances: int = Field(ge=1, description="Lowest instance count (MinCapacity).")
    max_instances: int = Field(ge=1, description="Highest instance count (MaxCapacity).")
    target_invocations_per_instance: float = Field(
        gt=0,
        description="Target of SageMakerVariantInvocationsPerInstance (invocations per minute).",
    )
    scale_in_cooldown: int = Field(default=300, ge=0, description="Seconds after a scale-in.")
    scale_out_cooldown: int = Field(default=60, ge=0, description="Seconds after a scale-out.")

    @model_validator(mode="after")
    def _range(self) -> Autoscaling:
        if self.max_instances < self.min_instances:
            raise SpecValueError(
                f"got max_instances {self.max_instances} below min_instances "
                f"{self.min_instances}; max_instances must be at least min_instances"
            )
        return self


class DataCapture(_Spec):
    """DataCaptureConfig of the endpoint config."""

    destination: str = Field(description="s3:// prefix where captured data goes.")
    sampling_percentage: int = Field(default=100, ge=0, le=100, description="Percent captured.")
    capture: list[Literal["Input", "Output"]] = Field(
        default=["Input", "Output"],
        min_length=1,
        description="What is captured: Input, Output or both.",
    )

    @field_validator("destination")
    @classmethod
    def _destination(cls, value: str) -> str:
        if not S3_URI_RULE.fullmatch(value):
            raise SpecValueError(f"got {value!r}; give an s3://BUCKET/PREFIX URI")
        return value


class Endpoint(_Spec):
    """The production variant the pipeline is served by."""

    instance_type: str = Field(
        default="ml.m5.large",
        pattern=r"^ml\.[a-z0-9]+\.[a-z0-9]+$",
        description="SageMaker instance type, such as ml.m5.large.",
    )
    instance_count: int = Field(default=1, ge=1, description="InitialInstanceCount.")
    variant_name: str = Field(default="AllTraffic", description="VariantName.")
    startup_health_check_timeout: int | None = Field(
        default=None,
        ge=60,
        le=3600,
        description=(
            "ContainerStartupHealthCheckTimeoutInSeconds (60 to 3600). Locally, the time each "
            "container has to pass /ping; 480 (SageMaker's 8 minutes) when unset."
        ),
    )
    kms_key_id: str | None = Field(
        default=None, description="KmsKeyId of the endpoint config (storage volume encryption)."
    )
    data_capture: DataCapture | None = Field(default=None, description="DataCaptureConfig.")
    autoscaling: Autoscaling | None = Field(
        default=None, description="Target-tracking autoscaling of the variant."
    )

    @field_validator("variant_name")
    @classmethod
    def _variant(cls, value: str) -> str:
        return check_name(value, "a variant name")


class VpcConfig(_Spec):
    """VpcConfig of CreateModel."""

    security_group_ids: list[str] = Field(
        min_length=1, json_schema_extra={"maxItems": MAX_SECURITY_GROUPS}, description="sg-... ids."
    )
    subnets: list[str] = Field(
        min_length=1, json_schema_extra={"maxItems": MAX_SUBNETS}, description="subnet-... ids."
    )

    @field_validator("security_group_ids", "subnets", mode="wrap")
    @classmethod
    def _count(
        cls, value: Any, handler: ValidatorFunctionWrapHandler, info: ValidationInfo
    ) -> list[str]:
        limit = MAX_SECURITY_GROUPS if info.field_name == "security_group_ids" else MAX_SUBNETS
        result: list[str] = _with_counts(value, handler, rules.too_many_items(value, limit))
        return result


class Aws(_Spec):
    """Where deploy puts things. Deploy fills gaps from the standard AWS chain."""

    region: str | None = Field(
        default=None,
        pattern=r"^[a-z]{2}(-[a-z]+)+-\d$",
        description="AWS region; default from the standard AWS chain.",
    )
    role_arn: str | None = Field(
        default=None, description="ExecutionRoleArn: the IAM role SageMaker assumes."
    )
    s3_bucket: str | None = Field(
        default=None,
        description="Bucket for model data; default sagemaker-{region}-{account}, as SageMaker's.",
    )
    s3_prefix: str = Field(default="sagemaker-composer", description="Key prefix for model data.")
    ecr_repository_prefix: str = Field(
        default="sagemaker-composer",
        pattern=r"^[a-z0-9]+(?:[._\-/][a-z0-9]+)*$",
        description="Images are named <prefix>-<hostname>.",
    )
    tags: dict[str, str] = Field(
        default_factory=dict,
        description="Tags put on the model, endpoint config and endpoint (at most 50).",
        json_schema_extra={"maxProperties": MAX_TAGS},
    )
    vpc_config: VpcConfig | None = Field(default=None, description="VpcConfig of the model.")
    enable_network_isolation: bool | None = Field(
        default=None, description="EnableNetworkIsolation of the model."
    )

    @field_validator("role_arn")
    @classmethod
    def _role(cls, value: str | None) -> str | None:
        if value is not None and not ROLE_ARN_RULE.fullmatch(value):
            raise SpecValueError(
                f"got {value!r}; an execution role is arn:aws:iam::ACCOUNT:role/NAME "
                "with a 12-digit account"
            )
        return value

    @field_validator("tags", mode="wrap")
    @classmethod
    def _tags(cls, value: Any, handler: ValidatorFunctionWrapHandler) -> dict[str, str]:
        result: dict[str, str] = _with_counts(value, handler, rules.too_many_tags(value))
        return result


class AsyncInference(_Spec):
    """AsyncInferenceConfig of the endpoint config (single-container pipelines only)."""

    output_path: str = Field(description="S3OutputPath: s3:// prefix for <InferenceId>.out files.")
    failure_path: str | None = Field(
        default=None, description="S3FailurePath: s3:// prefix for <InferenceId>-error.out files."
    )
    success_topic: str | None = Field(default=None, description="SNS topic ARN told of success.")
    error_topic: str | None = Field(default=None, description="SNS topic ARN told of failure.")
    kms_key_id: str | None = Field(default=None, description="KMS key for the output objects.")
    max_concurrent_invocations_per_instance: int | None = Field(
        default=None,
        ge=1,
        le=1000,
        description="ClientConfig.MaxConcurrentInvocationsPerInstance: requests in flight at once.",
    )

    @field_validator("output_path", "failure_path")
    @classmethod
    def _s3(cls, value: str | None) -> str | None:
        if value is not None and not S3_URI_RULE.fullmatch(value):
            raise SpecValueError(f"got {value!r}; give an s3://BUCKET/PREFIX URI")
        return value


class Transform(_Spec):
    """Defaults of batch transform jobs (CreateTransformJob); command-line options override them."""

    instance_type: str | None = Field(
        default=None,
        pattern=r"^ml\.[a-z0-9]+\.[a-z0-9]+$",
        description="TransformResources.InstanceType; default endpoint.instance_type.",
    )
    instance_count: int = Field(default=1, ge=1, description="TransformResources.InstanceCount.")
    max_concurrent_transforms: int | None = Field(
        default=None,
        ge=1,
        description="MaxConcurrentTransforms: requests in flight per instance.",
    )
    max_payload_mb: int | None = Field(
        default=None,
        ge=0,
        le=MAX_PAYLOAD_MB,
        description="MaxPayloadInMB (0 to 100): the largest mini-batch; 0 means no limit.",
    )
    batch_strategy: BatchStrategy | None = Field(
        default=None, description="BatchStrategy: one record per request, or mini-batches."
    )
    invocations_timeout: int = Field(
        default=DEFAULT_INVOCATIONS_TIMEOUT,
        ge=1,
        le=MAX_INVOCATIONS_TIMEOUT,
        description="ModelClientConfig.InvocationsTimeoutInSeconds (1 to 3600).",
    )
    invocations_max_retries: int = Field(
        default=DEFAULT_INVOCATIONS_RETRIES,
        ge=0,
        le=MAX_INVOCATIONS_RETRIES,
        description="ModelClientConfig.InvocationsMaxRetries (0 to 3).",
    )

    @model_validator(mode="after")
    def _product(self) -> Transform:
        concurrent, payload = self.max_concurrent_transforms, self.max_payload_mb
        product = (concurrent or 0) * (payload or 0)
        if product > MAX_TRANSFORM_PRODUCT:
            raise SpecValueError(
                f"got max_concurrent_transforms {concurrent} x max_payload_mb {payload} = "
                f"{product}; SageMaker allows a product of at most {MAX_TRANSFORM_PRODUCT}"
            )
        return self


class Pipeline(_Spec):
    """A SageMaker model of 1 to 15 containers and the endpoint that serves it."""

    name: str = Field(
        description=(
            "Names the model, endpoint config and endpoint (and the local endpoint): "
            "letters, digits and inner hyphens, at most 63."
        )
    )
    mode: Literal["Direct", "Serial"] = Field(
        default="Serial",
        description=(
            "InferenceExecutionConfig.Mode: Direct invokes one container by hostname; Serial "
            "chains them in order. Default Serial, as in SageMaker."
        ),
    )
    containers: list[Container] = Field(
        min_length=1,
        json_schema_extra={"maxItems": MAX_CONTAINERS},
        description="1 to 15 containers. One becomes PrimaryContainer; more become Containers.",
    )
    endpoint: Endpoint = Field(default_factory=Endpoint, description="Endpoint settings.")
    aws: Aws = Field(default_factory=Aws, description="Deploy settings.")
    base_image: str = Field(
        default=DEFAULT_BASE_IMAGE,
        description="Base image of every built container (FROM).",
    )
    async_inference: AsyncInference | None = Field(
        default=None,
        alias="async",
        description=(
            "Asynchronous invocations (AsyncInferenceConfig); single-container pipelines only."
        ),
    )
    transform: Transform | None = Field(
        default=None,
        description=(
            "Batch transform defaults (CreateTransformJob); Serial or single-container "
            "pipelines only."
        ),
    )

    _source: Path | None = PrivateAttr(default=None)
    #: The hostnames of the whole pipeline a part (`part`) was taken from, in order.
    _whole: tuple[str, ...] | None = PrivateAttr(default=None)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return check_name(value, "a SageMaker endpoint name")

    @field_validator("containers", mode="wrap")
    @classmethod
    def _containers(cls, value: Any, handler: ValidatorFunctionWrapHandler) -> list[Container]:
        # Unique hostnames are checked with the pipeline's rules, or here if the list fails
        # (its failure keeps those rules from running).
        result: list[Container] = _with_counts(
            value,
            handler,
            rules.too_many_containers(value),
            lambda: rules.duplicate_hostnames(value),
        )
        return result

    @model_validator(mode="after")
    def _rules(self, info: ValidationInfo) -> Pipeline:
        """Every rule of rules.py, once the fields are valid.

        Relative paths resolve against the folder of the file named by the validation
        context's `source` (`Pipeline.model_validate(data, context={"source": path})`, as the
        loader does), else against the working directory.
        """
        source = (info.context or {}).get("source")
        if source is not None:
            self._source = Path(source).resolve()
        found = [*rules.pipeline_rules(self), *rules.file_rules(self)]
        if found:
            raise _refusal((loc, message, _value_at(self, loc)) for loc, message in found)
        return self

    @property
    def source(self) -> Path | None:
        """The YAML file this pipeline was read from, if any."""
        return self._source

    @property
    def base_dir(self) -> Path:
        """Relative paths in the spec resolve against the YAML file's folder."""
        return self._source.parent if self._source is not None else Path.cwd()

    @property
    def state_dir(self) -> Path:
        """Working files (build contexts, logs, model folders): .composer/NAME beside the spec."""
        return self.base_dir / STATE_DIR / self.name

    def resolve(self, relative: str) -> Path:
        return (self.base_dir / relative).resolve()

    def part(self, hostnames: Iterable[str], folder: Path) -> Pipeline:
        """Some of its containers, with their working files under `folder` (local paths made
        absolute): what `up --watch` starts beside the running ones. A part of a valid pipeline,
        so not checked again (one container of a Direct pipeline is not a pipeline of its own)."""
        wanted = set(hostnames)
        containers = []
        for c in self.containers:
            if c.hostname not in wanted:
                continue
            paths: dict[str, str] = {}
            if c.build is not None:
                paths["build"] = str(self.resolve(c.build))
            if c.model_data is not None and not c.model_data.startswith("s3://"):
                paths["model_data"] = str(self.resolve(c.model_data))
            containers.append(c.model_copy(update=paths))
        whole = self.siblings
        copy = self.model_copy(update={"containers": containers})
        copy._source = folder.resolve() / "pipeline.yaml"
        copy._whole = whole
        return copy

    @property
    def siblings(self) -> tuple[str, ...]:
        """The hostnames of the whole pipeline, in order; of the pipeline a part came from."""
        return self._whole or tuple(c.hostname for c in self.containers)

    def position(self, hostname: str) -> int:
        """A container's place in the whole pipeline: a part's container keeps it, so its
        SAGEMAKER_SAFE_PORT_RANGE (and log colour) is the one it has beside its siblings."""
        return self.siblings.index(hostname)

    def container(self, hostname: str) -> Container:
        for c in self.containers:
            if c.hostname == hostname:
                return c
        known = ", ".join(c.hostname for c in self.containers)
        raise KeyError(f"got hostname {hostname!r}; this pipeline has {known}")

    @property
    def is_multi_container(self) -> bool:
        return len(self.containers) > 1

    def check_batch_transform(self) -> None:
        """Refuse a batch transform SageMaker would not run, whether or not a spec asks for one."""
        refusal = rules.batch_transform_refusal(self)
        if refusal is not None:
            raise UsageError(refusal)


def json_schema() -> dict[str, Any]:
    """pipeline.yaml's JSON Schema for editors: `sm-compose schema` prints it, `init` writes it."""
    document = Pipeline.model_json_schema()
    document["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    document["title"] = "sagemaker-composer pipeline"
    return document
