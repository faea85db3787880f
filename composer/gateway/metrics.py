"""SageMaker's per-container CloudWatch metrics, exposed in Prometheus text format.

Names follow CloudWatch (AWS/SageMaker namespace); latencies are in microseconds, as there.
Each gateway owns its registry, so two gateways in one process never share counters; every
endpoint it serves reports into it under its own `endpoint` label, and each copy of a variant
(instance) under its own `instance` label. The labels stand for CloudWatch's dimensions
(`DIMENSIONS`); each series' labels are bound once, when its endpoint is served.
"""

from __future__ import annotations

import contextlib

from prometheus_client import CONTENT_TYPE_LATEST as CONTENT_TYPE
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from .config import GatewayConfig

__all__ = ["CONTENT_TYPE", "DIMENSIONS", "EndpointMetrics", "GatewayMetrics"]

ENDPOINT_LEVEL = ""  # container label of what happens before/around any container
_LABELS = ("endpoint", "variant", "container", "instance")
#: Label -> the CloudWatch dimension it stands for (InstanceId: SageMaker reports per-instance
#: figures under the variant; here each copy has its own series).
DIMENSIONS = {
    "endpoint": "EndpointName",
    "variant": "VariantName",
    "container": "ContainerName",
    "instance": "InstanceId",
}
# 100 us .. 60 s, roughly x2.5 steps: microsecond units as CloudWatch reports them.
_BUCKETS = (
    100.0, 250.0, 500.0, 1_000.0, 2_500.0, 5_000.0, 10_000.0, 25_000.0, 50_000.0,
    100_000.0, 250_000.0, 500_000.0, 1_000_000.0, 2_500_000.0, 5_000_000.0,
    10_000_000.0, 30_000_000.0, 60_000_000.0,
)  # fmt: skip


class _Children:
    """Pre-bound label children: the hot path does no label lookups."""

    def __init__(self, m: GatewayMetrics, labels: tuple[str, ...]) -> None:
        self.invocations = m.invocations.labels(*labels)
        self.errors_4xx = m.errors_4xx.labels(*labels)
        self.errors_5xx = m.errors_5xx.labels(*labels)
        self.container_latency = m.container_latency.labels(*labels)
        self.overhead_latency = m.overhead_latency.labels(*labels)


class GatewayMetrics:
    """Invocations, Invocation4XXErrors, Invocation5XXErrors, ContainerLatency, OverheadLatency."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.invocations = Counter(
            "Invocations", "Requests sent to a container", _LABELS, registry=r
        )
        self.errors_4xx = Counter(
            "Invocation4XXErrors",
            "Requests answered 4xx: by the container, or by the gateway (container label empty)",
            _LABELS,
            registry=r,
        )
        self.errors_5xx = Counter(
            "Invocation5XXErrors",
            "Requests failed 5xx, timed out or unreachable at the container, or failed in the "
            "gateway (container label empty)",
            _LABELS,
            registry=r,
        )
        self.container_latency = Histogram(
            "ContainerLatency",
            "Microseconds a container took to answer, as seen from the gateway",
            _LABELS,
            buckets=_BUCKETS,
            registry=r,
        )
        self.overhead_latency = Histogram(
            "OverheadLatency",
            "Microseconds the gateway added to a request beyond container latency",
            _LABELS,
            buckets=_BUCKETS,
            registry=r,
        )
        self.families = (
            self.invocations,
            self.errors_4xx,
            self.errors_5xx,
            self.container_latency,
            self.overhead_latency,
        )

    def endpoint(self, config: GatewayConfig) -> EndpointMetrics:
        return EndpointMetrics(self, config)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class EndpointMetrics:
    """One endpoint instance's series: per container, and endpoint-level (`container=""`).

    An endpoint served again under the same name and instance id (replaced, as `up` replaces its
    one) keeps counting in the same series; copies with new instance ids count in new ones.
    """

    def __init__(self, metrics: GatewayMetrics, config: GatewayConfig) -> None:
        self._metrics = metrics
        e, v, i = config.endpoint_name, config.variant_name, config.instance_id
        hosts = [c.hostname for c in config.containers] + [ENDPOINT_LEVEL]
        self.labels = {(e, v, host, i) for host in hosts}
        self._children = {labels[2]: _Children(metrics, labels) for labels in self.labels}

    def dimensions(self, container: str) -> dict[str, str]:
        """The CloudWatch dimensions of `container`'s series (ENDPOINT_LEVEL: the endpoint's)."""
        (labels,) = [labels for labels in self.labels if labels[2] == container]
        return {
            DIMENSIONS[name]: value for name, value in zip(_LABELS, labels, strict=True) if value
        }

    def of(self, container: str) -> _Children:
        return self._children[container]

    def forget(self, keep: EndpointMetrics | None = None) -> None:
        """Drop this endpoint's series from /metrics, except those `keep` (its successor) has."""
        for labels in self.labels - (keep.labels if keep is not None else set()):
            for family in self._metrics.families:
                with contextlib.suppress(KeyError):  # forgotten already
                    family.remove(*labels)
