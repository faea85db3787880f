"""Local gateway speaking SageMaker Runtime's wire protocol in front of endpoints' containers.

Takes plain config objects (no composer.spec/render imports) so the runner wires it up.

Where each behaviour lives:

- config.py: `GatewayConfig`, `Upstream`, `AsyncSettings`, the client timeout's default;
- registry.py: the endpoints one gateway serves, by name (lookups, atomic put/replace/remove,
  the unknown-endpoint answer);
- variants.py: an endpoint's production variants: TargetVariant, the split by weight;
- endpoint.py: InvokeEndpoint for one endpoint: Direct and Serial routing, the header and
  variant checks, container calls and their failures, per-container metrics;
- streaming.py: InvokeEndpointWithResponseStream (each container chunk one PayloadPart;
  failures mid-stream as ModelStreamError), on endpoint.py's routing;
- eventstream.py: AWS event-stream framing (prelude, headers, CRCs) of its answers;
- sessions.py: stateful sessions (SessionId): the open session ids of each endpoint, expiry;
- multimodel.py: TargetModel on a multi-model container (load, LRU eviction, reload);
- asyncinv.py: InvokeEndpointAsync (queue, input and output locations);
- errors.py: every failure as SageMaker's error shape; header-value limits;
- reply.py: `Reply`, the answer both HTTP servers write;
- connections.py: the connection policy of both servers: client timeouts, request ids, the
  last-resort 500, linger and drain on stop, one-line logs of refused requests;
- fastpath.py: the listening socket's protocol: plain invocations parsed and answered there;
- control.py: the control plane's route (`POST /`, `X-Amz-Target`, AWS JSON 1.1): the envelope
  and its errors; what operations mean is the `ControlPlane` handler's (composer/localsm/);
- app.py: aiohttp's side: every other request, routes, the 404 shape, body reading;
- server.py: `Gateway`, `ThreadedGateway`, `start_gateway`: start and stop;
- upstream.py: the HTTP/1.1 client to containers (kept-alive connections; streamed answers
  part by part);
- metrics.py: CloudWatch's metrics in Prometheus text format;
- trace.py: the per-hop trace (`Trace`): each container call of every invocation in a bounded
  ring buffer, bodies only when asked; `up --trace`'s line;
- api.py: our own routes under `/_composer/`: the inspector's page (static files in inspector/)
  and its JSON under `/_composer/api/` (trace, endpoints, metrics), never on SageMaker's paths.
"""

from .app import create_app
from .config import MAX_PAYLOAD_BYTES, GatewayConfig, GatewaySettings, Health, Upstream
from .control import ControlPlane
from .endpoint import Endpoint
from .registry import EndpointRegistry
from .reply import Reply
from .server import Gateway, ThreadedGateway, start_gateway
from .trace import Trace

__all__ = [
    "MAX_PAYLOAD_BYTES",
    "ControlPlane",
    "Endpoint",
    "EndpointRegistry",
    "Gateway",
    "GatewayConfig",
    "GatewaySettings",
    "Health",
    "Reply",
    "ThreadedGateway",
    "Trace",
    "Upstream",
    "create_app",
    "start_gateway",
]
