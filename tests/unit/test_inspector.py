"""The inspector's side of the gateway that needs no server: its files as the package ships them,
and the per-container metrics it reads (percentiles from the gateway's histograms)."""

from __future__ import annotations

import re
from importlib import resources

import pytest
from prometheus_client import CollectorRegistry, Counter

from composer.gateway import GatewayConfig, Upstream
from composer.gateway.api import PAGE_FILES, container_metrics, quantile
from composer.gateway.metrics import GatewayMetrics


def _config() -> GatewayConfig:
    ups = tuple(
        Upstream(hostname=h, url="http://127.0.0.1:9", log_path=f"/tmp/{h}.log") for h in "ab"
    )
    return GatewayConfig(endpoint_name="ep", mode="Direct", containers=ups)


def test_every_page_file_ships_and_fetches_nothing_from_elsewhere() -> None:
    folder = resources.files("composer.gateway") / "inspector"
    for file, _content_type in PAGE_FILES.values():
        # SVG's namespace is a name, not a fetch
        text = (folder / file).read_text().replace('"http://www.w3.org/2000/svg"', "")
        # no URL with a scheme or a protocol-relative one: everything comes from the gateway
        assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text, re.I), file
    page = (folder / "index.html").read_text()
    assert 'src="/_composer/app.js"' in page and 'href="/_composer/style.css"' in page


@pytest.mark.parametrize(
    ("q", "want"),
    [(0.25, 50.0), (0.5, 100.0), (0.75, 150.0), (1.0, 200.0), (0.0, 0.0)],
)
def test_quantile_interpolates_within_the_bucket(q: float, want: float) -> None:
    # 2 at most 100, 2 in (100, 200], none above: cumulative counts, as Prometheus keeps them
    buckets = [(100.0, 2.0), (200.0, 4.0), (300.0, 4.0), (float("inf"), 4.0)]
    assert quantile(q, buckets) == pytest.approx(want)


def test_quantile_of_nothing_and_beyond_the_last_bound() -> None:
    assert quantile(0.5, [(100.0, 0.0), (float("inf"), 0.0)]) is None
    assert quantile(0.99, [(100.0, 1.0), (float("inf"), 10.0)]) == 100.0


def test_container_metrics_per_container_from_the_gateways_registry() -> None:
    metrics = GatewayMetrics()
    endpoint = metrics.endpoint(_config())
    a = endpoint.of("a")
    for us in (500.0, 1500.0, 1500.0, 4000.0):
        a.invocations.inc()
        a.container_latency.observe(us)
    a.errors_4xx.inc()
    endpoint.of("b").errors_5xx.inc(2)
    found = {m["container"]: m for m in container_metrics(metrics.registry)}
    assert set(found) == {"", "a", "b"}  # "": endpoint-level
    assert (found["a"]["invocations"], found["a"]["errors_4xx"], found["a"]["errors_5xx"]) == (
        4,
        1,
        0,
    )
    assert found["b"]["errors_5xx"] == 2
    latency = found["a"]["latency_ms"]
    assert latency["count"] == 4 and latency["mean"] == pytest.approx(1.875)
    assert 1.0 <= latency["p50"] <= 2.5 and latency["p50"] <= latency["p90"] <= latency["p99"]
    assert found["b"]["latency_ms"]["p50"] is None
    assert found["a"]["latency_buckets_us"][-1] == ["+Inf", 4]


def test_container_metrics_sum_over_labels_beyond_endpoint_variant_container() -> None:
    registry = CollectorRegistry()
    per_instance = Counter(
        "Invocations", "", ("endpoint", "variant", "container", "instance"), registry=registry
    )
    per_instance.labels("ep", "AllTraffic", "a", "1").inc(2)
    per_instance.labels("ep", "AllTraffic", "a", "2").inc(3)
    (only,) = container_metrics(registry)
    assert (only["endpoint"], only["container"], only["invocations"]) == ("ep", "a", 5)
