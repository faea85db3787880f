"""Our own JSON under `/_composer/api/`: the trace and the endpoints, for tools and tests.

Why this prefix: no SageMaker path starts with `/_composer/`, so nothing boto3 sends reaches
these routes. They answer clients on the gateway's own machine only (a loopback peer): the trace
can hold request bodies (`--trace-bodies`), and `--host` may expose the gateway to others.
"""

from __future__ import annotations

import ipaddress

from aiohttp import web

from .registry import EndpointRegistry
from .trace import as_json

PREFIX = "/_composer/api"


def _local_only(request: web.Request) -> None:
    peer = request.remote or ""
    try:
        local = ipaddress.ip_address(peer.split("%")[0]).is_loopback
    except ValueError:
        local = False
    if not local:
        raise web.HTTPForbidden(reason=f"{PREFIX}/ answers clients on the gateway's machine only")


def add_routes(app: web.Application, endpoints: EndpointRegistry) -> None:
    """The API's routes on the gateway's aiohttp app."""

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

    app.router.add_get(f"{PREFIX}/trace", trace)
    app.router.add_get(f"{PREFIX}/endpoints", listed)
