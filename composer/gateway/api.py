"""Our own routes under `/_composer/`: the inspector's page, and the JSON it and tests read.

Why this prefix: no SageMaker path starts with `/_composer/`, so nothing boto3 sends reaches
these routes. They answer clients on the gateway's own machine only (a loopback peer): the trace
can hold request bodies (`--trace-bodies`), and `--host` may expose the gateway to others.

- `/_composer/`: the inspector, plain static files shipped in `inspector/` (no build step, nothing
  fetched from elsewhere: its Content-Security-Policy allows this origin only);
- `/_composer/api/trace`, `/_composer/api/endpoints`: the trace and what is served;
- `/_composer/api/metrics`: each container's invocations, errors and latency, read from the
  gateway's Prometheus registry (metrics.py), summed over any label besides endpoint, variant
  and container.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Iterable
from importlib import resources
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry

from .registry import EndpointRegistry
from .trace import as_json

ROOT = "/_composer"
PREFIX = f"{ROOT}/api"

#: The inspector's files (the package's `inspector/` folder), by the name served under ROOT.
PAGE_FILES = {
    "": ("index.html", "text/html; charset=utf-8"),
    "app.js": ("app.js", "text/javascript; charset=utf-8"),
    "style.css": ("style.css", "text/css; charset=utf-8"),
}
_PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}
#: Latency percentiles the metrics route gives.
QUANTILES = (0.5, 0.9, 0.99)


def _local_only(request: web.Request) -> None:
    peer = request.remote or ""
    try:
        local = ipaddress.ip_address(peer.split("%")[0]).is_loopback
    except ValueError:
        local = False
    if not local:
        raise web.HTTPForbidden(reason=f"{ROOT}/ answers clients on the gateway's machine only")


def quantile(q: float, buckets: list[tuple[float, float]]) -> float | None:
    """The q-quantile of a cumulative histogram ((upper bound, count) pairs, +Inf last),
    interpolated within its bucket as Prometheus' histogram_quantile does; None when empty."""
    total = buckets[-1][1] if buckets else 0.0
    if total <= 0:
        return None
    rank = q * total
    lower, below = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return lower  # beyond the last finite bound: that bound, as Prometheus says
            return lower + (bound - lower) * ((rank - below) / (count - below or 1.0))
        lower, below = bound, count
    return lower


def container_metrics(registry: CollectorRegistry) -> list[dict[str, Any]]:
    """Per (endpoint, variant, container): invocations, 4xx and 5xx errors, latency (ms)."""
    series: dict[tuple[str, str, str], dict[str, Any]] = {}

    def of(labels: dict[str, str]) -> dict[str, Any]:
        key = (labels.get("endpoint", ""), labels.get("variant", ""), labels.get("container", ""))
        if key not in series:
            series[key] = {
                "endpoint": key[0],
                "variant": key[1],
                "container": key[2],
                "invocations": 0,
                "errors_4xx": 0,
                "errors_5xx": 0,
                "_latency": {},
                "_latency_sum": 0.0,
            }
        return series[key]

    counters = {
        "Invocations_total": "invocations",
        "Invocation4XXErrors_total": "errors_4xx",
        "Invocation5XXErrors_total": "errors_5xx",
    }
    for family in registry.collect():
        for sample in family.samples:
            name = counters.get(sample.name)
            if name is not None:
                of(sample.labels)[name] += int(sample.value)
            elif sample.name == "ContainerLatency_bucket":
                labels = dict(sample.labels)
                bound = float(labels.pop("le"))
                buckets = of(labels)["_latency"]
                buckets[bound] = buckets.get(bound, 0.0) + sample.value
            elif sample.name == "ContainerLatency_sum":
                of(sample.labels)["_latency_sum"] += sample.value
    return [_finish(s) for _key, s in sorted(series.items())]


def _finish(found: dict[str, Any]) -> dict[str, Any]:
    buckets = sorted(found.pop("_latency").items())
    total_us = found.pop("_latency_sum")
    count = buckets[-1][1] if buckets else 0.0
    found["latency_ms"] = {
        "count": int(count),
        "mean": round(total_us / count / 1000, 3) if count else None,
        **{f"p{round(q * 100)}": _ms(quantile(q, buckets)) for q in QUANTILES},
    }
    # microsecond upper bounds and cumulative counts, so a reader can take a window's percentiles
    found["latency_buckets_us"] = [[_bound(b), int(c)] for b, c in buckets]
    return found


def _ms(us: float | None) -> float | None:
    return None if us is None else round(us / 1000, 3)


def _bound(bound: float) -> float | str:
    return "+Inf" if math.isinf(bound) else bound


def _page_file(name: str) -> tuple[bytes, str]:
    file, content_type = PAGE_FILES[name]
    return (resources.files(__package__) / "inspector" / file).read_bytes(), content_type


def add_routes(app: web.Application, endpoints: EndpointRegistry) -> None:
    """The inspector's and the API's routes on the gateway's aiohttp app."""

    async def trace(request: web.Request) -> web.StreamResponse:
        _local_only(request)
        raw = request.query.get("limit", "100")
        if not raw.isdigit():
            raise web.HTTPBadRequest(reason=f"limit: got {raw!r}; allowed is a whole number >= 0")
        recorder = endpoints.trace
        wanted = request.query.get("request_id")
        hops = [] if recorder is None else recorder.recent(int(raw), wanted)
        return web.json_response(
            {"bodies": recorder is not None and recorder.bodies, "hops": [as_json(h) for h in hops]}
        )

    async def listed(request: web.Request) -> web.StreamResponse:
        _local_only(request)
        found = []
        for name in endpoints.names:
            for endpoint in endpoints.serving(name):  # one per variant instance
                config = endpoint.config
                health = endpoint.health
                found.append(
                    {
                        "name": name,
                        "mode": config.mode,
                        "variant": config.variant_name,
                        "instance": config.instance_id,
                        "containers": [
                            {
                                "hostname": c.hostname,
                                "url": c.url,
                                "up": health is None or health.is_up(c.hostname),
                                "log_path": c.log_path,
                                "log_stream_arn": config.log_stream_arn(c.hostname),
                            }
                            for c in config.containers
                        ],
                    }
                )
        return web.json_response({"endpoints": found})

    async def metrics(request: web.Request) -> web.StreamResponse:
        _local_only(request)
        return web.json_response({"containers": container_metrics(endpoints.metrics.registry)})

    async def page(request: web.Request) -> web.StreamResponse:
        _local_only(request)
        name = request.match_info.get("file", "")
        if name not in PAGE_FILES:
            raise web.HTTPNotFound(reason=f"no such file; the inspector has {_listed(PAGE_FILES)}")
        body, content_type = _page_file(name)
        return web.Response(body=body, headers={"Content-Type": content_type, **_PAGE_HEADERS})

    async def to_page(request: web.Request) -> web.StreamResponse:
        _local_only(request)
        raise web.HTTPFound(f"{ROOT}/")

    app.router.add_get(f"{PREFIX}/trace", trace)
    app.router.add_get(f"{PREFIX}/endpoints", listed)
    app.router.add_get(f"{PREFIX}/metrics", metrics)
    app.router.add_get(ROOT, to_page)
    app.router.add_get(f"{ROOT}/", page)
    app.router.add_get(ROOT + "/{file:[a-z.]+}", page)


def _listed(names: Iterable[str]) -> str:
    return ", ".join(f"{ROOT}/{n}" for n in names)
