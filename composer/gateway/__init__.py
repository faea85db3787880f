"""Local gateway speaking SageMaker Runtime's wire protocol in front of an endpoint's containers.

Takes plain config objects (no composer.spec/render imports) so the runner wires it up.
"""

from .app import Gateway, ThreadedGateway, create_app, start_gateway
from .config import MAX_PAYLOAD_BYTES, GatewayConfig, Health, Upstream

__all__ = [
    "MAX_PAYLOAD_BYTES",
    "Gateway",
    "GatewayConfig",
    "Health",
    "ThreadedGateway",
    "Upstream",
    "create_app",
    "start_gateway",
]
