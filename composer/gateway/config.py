"""Plain configuration of one local endpoint: the runner builds it from a rendered pipeline."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Literal, Protocol

from ..sagemaker_facts import DEFAULT_REGION, NAME_RULE
from .multimodel import ModelSource

Mode = Literal["Direct", "Serial"]
MAX_PAYLOAD_BYTES = 6 * 1024 * 1024
DEFAULT_CLIENT_TIMEOUT = 60.0
CLIENT_TIMEOUT_ENV = "COMPOSER_GATEWAY_CLIENT_TIMEOUT"


def default_client_timeout() -> float:
    """COMPOSER_GATEWAY_CLIENT_TIMEOUT when set (so `up` and tests can shorten it), else 60 s."""
    raw = os.environ.get(CLIENT_TIMEOUT_ENV, "").strip()
    if not raw:
        return DEFAULT_CLIENT_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        value = 0.0
    if not 0 < value <= 86400:
        raise ValueError(f"{CLIENT_TIMEOUT_ENV}: got {raw!r}; allowed is a number of seconds > 0")
    return value


class Health(Protocol):
    """What the gateway asks the runner's supervisor before it connects to a container."""

    def is_up(self, hostname: str) -> bool: ...


@dataclass(frozen=True)
class Upstream:
    """One container as the gateway reaches it: its nginx URL and its own timeout."""

    hostname: str
    url: str
    invocation_timeout: float = 60.0
    log_path: str = ""
    #: Multi-model container: where its models come from (None: a single-model container).
    model_source: ModelSource | None = None

    def __post_init__(self) -> None:
        if not NAME_RULE.fullmatch(self.hostname):
            raise ValueError(
                f"container hostname {self.hostname!r} is not valid: SageMaker allows 1-63 "
                "letters, digits and inner hyphens"
            )
        if not self.url.startswith(("http://", "https://")):
            raise ValueError(f"container {self.hostname}: url {self.url!r} must be http(s)://")
        if not self.invocation_timeout > 0:
            raise ValueError(
                f"container {self.hostname}: invocation_timeout must be > 0, "
                f"got {self.invocation_timeout}"
            )


@dataclass(frozen=True)
class AsyncSettings:
    """AsyncInferenceConfig as the gateway uses it: where results go, how many run at once."""

    output_path: str
    failure_path: str | None = None
    max_concurrent_invocations: int = 4

    def __post_init__(self) -> None:
        if self.max_concurrent_invocations < 1:
            raise ValueError(
                "max_concurrent_invocations must be at least 1, got "
                f"{self.max_concurrent_invocations}"
            )


@dataclass(frozen=True)
class GatewaySettings:
    """What every endpoint of one gateway shares, for a gateway started with no endpoint yet
    (`sm-compose local`); a `GatewayConfig` carries the same three."""

    account_id: str = "000000000000"
    max_payload_bytes: int = MAX_PAYLOAD_BYTES
    client_timeout: float = field(default_factory=default_client_timeout)


@dataclass(frozen=True)
class GatewayConfig:
    """One endpoint with one production variant, served Direct or Serial."""

    endpoint_name: str
    mode: Mode
    containers: tuple[Upstream, ...]
    variant_name: str = "AllTraffic"
    #: Which copy of its variant this is, as SageMaker names an instance in its log streams
    #: (`i-...` there); the local SageMaker numbers a variant's copies local-1, local-2, ...
    instance_id: str = "local-1"
    region: str = DEFAULT_REGION
    account_id: str = "000000000000"
    max_payload_bytes: int = MAX_PAYLOAD_BYTES
    async_inference: AsyncSettings | None = None
    #: Seconds a caller has to send a request's headers, and again its body; a slower caller
    #: (slowloris) is cut off. Also how long an idle keep-alive connection stays open.
    client_timeout: float = field(default_factory=default_client_timeout)

    def __post_init__(self) -> None:
        if not self.client_timeout > 0:
            raise ValueError(f"client_timeout must be > 0, got {self.client_timeout}")
        if self.mode not in ("Direct", "Serial"):
            raise ValueError(f"mode must be 'Direct' or 'Serial', got {self.mode!r}")
        if not 1 <= len(self.containers) <= 15:
            raise ValueError(f"an endpoint has 1 to 15 containers, got {len(self.containers)}")
        names = [c.hostname for c in self.containers]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"container hostnames must be unique; repeated: {', '.join(dupes)}")
        for what, value in (
            ("endpoint_name", self.endpoint_name),
            ("variant_name", self.variant_name),
            ("instance_id", self.instance_id),
        ):
            if not NAME_RULE.fullmatch(value):
                raise ValueError(f"{what} {value!r} is not a valid SageMaker name")
        if self.max_payload_bytes <= 0:
            raise ValueError(f"max_payload_bytes must be > 0, got {self.max_payload_bytes}")
        if self.async_inference is not None and len(self.containers) > 1:
            raise ValueError(
                "asynchronous inference needs a single-container endpoint; got "
                f"{len(self.containers)} containers"
            )

    def upstream(self, hostname: str) -> Upstream | None:
        for c in self.containers:
            if c.hostname == hostname:
                return c
        return None

    @property
    def log_group(self) -> str:
        return f"/aws/sagemaker/Endpoints/{self.endpoint_name}"

    def log_stream(self, hostname: str) -> str:
        """SageMaker's stream name: `VARIANT/INSTANCE-ID`, and `/HOSTNAME` after it when the
        endpoint has several containers (Direct or Serial), as CloudWatch names them."""
        stream = f"{self.variant_name}/{self.instance_id}"
        return f"{stream}/{hostname}" if len(self.containers) > 1 else stream

    def log_stream_arn(self, hostname: str) -> str:
        """The ARN of the stream SageMaker would write `hostname`'s output to."""
        return (
            f"arn:aws:logs:{self.region}:{self.account_id}:log-group:{self.log_group}"
            f":log-stream:{self.log_stream(hostname)}"
        )
