"""The parameters of one transform job, and how they are settled.

SageMaker's precedence: the job's own values, then each container's GET /execution-parameters,
then the defaults (1 request at a time, MultiRecord, 6 MB). The settled values must keep
MaxConcurrentTransforms x MaxPayloadInMB at or below 100.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from ..errors import UsageError
from ..spec.models import BatchStrategy, Pipeline
from ..spec.rules import (
    DEFAULT_INVOCATIONS_RETRIES,
    DEFAULT_INVOCATIONS_TIMEOUT,
    MAX_INVOCATIONS_RETRIES,
    MAX_INVOCATIONS_TIMEOUT,
    MAX_PAYLOAD_MB,
    MAX_TRANSFORM_PRODUCT,
)

SplitType = Literal["None", "Line"]
Strategy = BatchStrategy
Assemble = Literal["None", "Line"]
Compression = Literal["None", "Gzip"]

DEFAULT_CONCURRENT = 1
DEFAULT_STRATEGY: Strategy = "MultiRecord"
DEFAULT_PAYLOAD_MB = 6
MB = 1024 * 1024
#: What the container environment calls the strategies (SAGEMAKER_BATCH_STRATEGY).
ENV_STRATEGY = {"MultiRecord": "MULTI_RECORD", "SingleRecord": "SINGLE_RECORD"}
_FROM_ENV = {v: k for k, v in ENV_STRATEGY.items()}


@dataclass(frozen=True)
class TransformOptions:
    """What the user asked for; None means "not set" (the container or the default decides)."""

    content_type: str | None = None
    accept: str | None = None
    split_type: SplitType = "None"
    strategy: Strategy | None = None
    max_payload_mb: int | None = None
    max_concurrent: int | None = None
    assemble_with: Assemble = "None"
    compression: Compression = "None"
    invocations_timeout: int = DEFAULT_INVOCATIONS_TIMEOUT
    invocations_max_retries: int = DEFAULT_INVOCATIONS_RETRIES

    def __post_init__(self) -> None:
        _choice("--split-type", self.split_type, ("None", "Line"))
        _choice("--assemble-with", self.assemble_with, ("None", "Line"))
        _choice("--compression", self.compression, ("None", "Gzip"))
        if self.strategy is not None:
            _choice("--strategy", self.strategy, ("MultiRecord", "SingleRecord"))
        if self.max_payload_mb is not None and not 0 <= self.max_payload_mb <= MAX_PAYLOAD_MB:
            raise UsageError(
                f"--max-payload-mb: got {self.max_payload_mb}; MaxPayloadInMB is 0 to "
                f"{MAX_PAYLOAD_MB}"
            )
        if self.max_concurrent is not None and self.max_concurrent < 1:
            raise UsageError(
                f"--max-concurrent: got {self.max_concurrent}; MaxConcurrentTransforms is at "
                "least 1"
            )
        if not 1 <= self.invocations_timeout <= MAX_INVOCATIONS_TIMEOUT:
            raise UsageError(
                f"--invocations-timeout: got {self.invocations_timeout}; 1 to "
                f"{MAX_INVOCATIONS_TIMEOUT} seconds"
            )
        if not 0 <= self.invocations_max_retries <= MAX_INVOCATIONS_RETRIES:
            raise UsageError(
                f"--invocations-max-retries: got {self.invocations_max_retries}; 0 to "
                f"{MAX_INVOCATIONS_RETRIES}"
            )
        if self.max_payload_mb is not None and self.max_concurrent is not None:
            _check_product(self.max_concurrent, self.max_payload_mb, "the job's values")

    @classmethod
    def from_spec(cls, pipeline: Pipeline, **given: Any) -> TransformOptions:
        """The spec's `transform:` defaults, overridden by every option that is not None."""
        spec = pipeline.transform
        values: dict[str, Any] = {}
        if spec is not None:
            values = {
                "strategy": spec.batch_strategy,
                "max_payload_mb": spec.max_payload_mb,
                "max_concurrent": spec.max_concurrent_transforms,
                "invocations_timeout": spec.invocations_timeout,
                "invocations_max_retries": spec.invocations_max_retries,
            }
        values.update({k: v for k, v in given.items() if v is not None})
        return cls(**values)

    def container_env(self) -> dict[str, str]:
        """What SageMaker puts in every container's environment for this job."""
        env = {"SAGEMAKER_BATCH": "true"}
        if self.max_payload_mb is not None:
            env["SAGEMAKER_MAX_PAYLOAD_IN_MB"] = str(self.max_payload_mb)
        if self.strategy is not None:
            env["SAGEMAKER_BATCH_STRATEGY"] = ENV_STRATEGY[self.strategy]
        if self.max_concurrent is not None:
            env["SAGEMAKER_MAX_CONCURRENT_TRANSFORMS"] = str(self.max_concurrent)
        return env


@dataclass(frozen=True)
class Settled:
    """The values a job runs with, and where each came from (for the report)."""

    max_concurrent: int
    strategy: Strategy
    max_payload_mb: int
    origin: dict[str, str] = field(default_factory=dict)

    @property
    def payload_limit(self) -> int | None:
        """Bytes per request; None when MaxPayloadInMB is 0 (no limit)."""
        return self.max_payload_mb * MB if self.max_payload_mb else None

    def describe(self) -> str:
        return (
            f"MaxConcurrentTransforms {self.max_concurrent} ({self.origin['concurrent']}), "
            f"BatchStrategy {self.strategy} ({self.origin['strategy']}), "
            f"MaxPayloadInMB {self.max_payload_mb} ({self.origin['payload']})"
        )


def _choice(option: str, value: str, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise UsageError(f"{option}: got {value!r}; one of {', '.join(allowed)}")


def _check_product(concurrent: int, payload: int, where: str) -> None:
    if concurrent * payload > MAX_TRANSFORM_PRODUCT:
        raise UsageError(
            f"MaxConcurrentTransforms {concurrent} x MaxPayloadInMB {payload} = "
            f"{concurrent * payload} from {where}; SageMaker allows at most "
            f"{MAX_TRANSFORM_PRODUCT} (lower --max-concurrent or --max-payload-mb)"
        )


def parse_execution_parameters(hostname: str, answer: Any) -> dict[str, Any]:
    """A container's /execution-parameters answer, checked; bad values are named, not guessed."""
    if not isinstance(answer, Mapping):
        raise UsageError(
            f"container {hostname}: GET /execution-parameters answered {answer!r}; expected a "
            'JSON object such as {"MaxConcurrentTransforms": 2, "BatchStrategy": '
            '"MULTI_RECORD", "MaxPayloadInMB": 6}'
        )
    out: dict[str, Any] = {}
    concurrent = answer.get("MaxConcurrentTransforms")
    if concurrent is not None:
        if not isinstance(concurrent, int) or isinstance(concurrent, bool) or concurrent < 1:
            raise UsageError(
                f"container {hostname}: MaxConcurrentTransforms {concurrent!r} from "
                "/execution-parameters; expected an integer of at least 1"
            )
        out["concurrent"] = concurrent
    payload = answer.get("MaxPayloadInMB")
    if payload is not None:
        if (
            not isinstance(payload, int)
            or isinstance(payload, bool)
            or not 0 <= payload <= MAX_PAYLOAD_MB
        ):
            raise UsageError(
                f"container {hostname}: MaxPayloadInMB {payload!r} from /execution-parameters; "
                f"expected an integer from 0 to {MAX_PAYLOAD_MB}"
            )
        out["payload"] = payload
    strategy = answer.get("BatchStrategy")
    if strategy is not None:
        name = _FROM_ENV.get(str(strategy).upper(), str(strategy))
        if name not in ENV_STRATEGY:
            raise UsageError(
                f"container {hostname}: BatchStrategy {strategy!r} from /execution-parameters; "
                "expected MULTI_RECORD or SINGLE_RECORD"
            )
        out["strategy"] = name
    return out


def settle(options: TransformOptions, answers: Mapping[str, Mapping[str, Any]]) -> Settled:
    """Job values first, then the containers' (the strictest of them), then the defaults.

    A Serial pipeline has several containers: every one of them receives each request, so the
    smallest concurrency and payload, and SingleRecord if any asks for it, are the safe choice.
    """
    origin: dict[str, str] = {}

    def strictest(key: str, pick: Any) -> tuple[Any, str] | None:
        found = [(a[key], host) for host, a in answers.items() if key in a]
        if not found:
            return None
        value, host = pick(found)
        return value, f"from container {host}'s /execution-parameters"

    def min_of(found: list[tuple[Any, str]]) -> tuple[Any, str]:
        return min(found, key=lambda item: item[0])

    def strategy_of(found: list[tuple[Any, str]]) -> tuple[Any, str]:
        single = [f for f in found if f[0] == "SingleRecord"]
        return single[0] if single else found[0]

    def choose(key: str, job: Any, pick: Any, default: Any) -> Any:
        if job is not None:
            origin[key] = "set for the job"
            return job
        if (got := strictest(key, pick)) is not None:
            value, origin[key] = got
            return value
        origin[key] = "default"
        return default

    concurrent: int = choose("concurrent", options.max_concurrent, min_of, DEFAULT_CONCURRENT)
    strategy: Strategy = choose("strategy", options.strategy, strategy_of, DEFAULT_STRATEGY)
    payload: int = choose("payload", options.max_payload_mb, min_of, DEFAULT_PAYLOAD_MB)
    settled = Settled(concurrent, strategy, payload, origin)
    _check_product(concurrent, payload, settled.describe())
    return settled
