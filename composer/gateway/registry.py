"""The endpoints one gateway serves, by name: the URL's endpoint name is looked up here.

A lookup is one dict access, and a request keeps the endpoint it found. So serving an endpoint
(`put`), replacing it (`put` again under its name) or removing it (`remove`) is atomic for
requests: one that arrived before the change is answered by the endpoint it found, one after by
the new one (or as an unknown endpoint), never by half of each. Call these on the gateway's loop.
"""

from __future__ import annotations

from collections.abc import Coroutine, Mapping
from typing import Any

from .config import GatewayConfig, GatewaySettings, Health
from .endpoint import BodyReader, Endpoint
from .errors import unknown_endpoint
from .metrics import GatewayMetrics
from .reply import Reply
from .streaming import Opened, invoke_stream
from .trace import Trace


class EndpointRegistry:
    """Name -> Endpoint, with the settings every endpoint of one gateway shares.

    The HTTP servers in front are the gateway's, so an endpoint's payload limit and client
    timeout must be the gateway's; the account is the one unknown names are reported against.
    """

    def __init__(
        self,
        metrics: GatewayMetrics,
        shared: GatewayConfig | GatewaySettings,
        trace: Trace | None = None,
    ) -> None:
        """`shared`: the config whose account, payload limit and client timeout all share;
        `trace`: where every endpoint records its hops (None: nowhere)."""
        self.metrics = metrics
        self.trace = trace
        self.account_id = shared.account_id
        self.max_payload_bytes = shared.max_payload_bytes
        self.client_timeout = shared.client_timeout
        self._by_name: dict[str, Endpoint] = {}
        self._retired: list[Endpoint] = []  # replaced or removed, async requests still queued

    @property
    def names(self) -> list[str]:
        return sorted(self._by_name)

    def get(self, name: str) -> Endpoint | None:
        return self._by_name.get(name)

    def put(self, config: GatewayConfig, health: Health | None = None) -> Endpoint:
        """Serve `config` under its name, in place of any endpoint of that name."""
        for what, got, gateway in (
            ("max_payload_bytes", config.max_payload_bytes, self.max_payload_bytes),
            ("client_timeout", config.client_timeout, self.client_timeout),
        ):
            if got != gateway:
                raise ValueError(
                    f"endpoint {config.endpoint_name}: {what} is {got}, but this gateway's is "
                    f"{gateway}: every endpoint of one gateway has the gateway's"
                )
        name = config.endpoint_name
        new = Endpoint(config, health, self.metrics.endpoint(config))
        new.trace = self.trace
        old = self._by_name.get(name)
        self._by_name[name] = new
        if old is not None:
            old.metrics.forget(keep=new.metrics)
            self._retire(old)
        return new

    def remove(self, name: str) -> Endpoint | None:
        """Stop serving `name` (its requests in flight are still answered); the endpoint, if any."""
        old = self._by_name.pop(name, None)
        if old is not None:
            old.metrics.forget()
            self._retire(old)
        return old

    def _retire(self, endpoint: Endpoint) -> None:
        endpoint.retire()
        self._retired = [e for e in self._retired if e.queued]
        if endpoint.queued:  # its queued asynchronous requests still run; a stop cancels them
            self._retired.append(endpoint)

    def invoke(
        self, request_id: str, name: str, headers: Mapping[str, str], body: bytes | BodyReader
    ) -> Coroutine[Any, Any, Reply]:
        """InvokeEndpoint on `name`: the endpoint's own coroutine (no await added on the way)."""
        endpoint = self._by_name.get(name)
        if endpoint is None:
            return self._unknown(request_id, name)
        return endpoint.invoke(request_id, headers, body)

    def invoke_stream(
        self, request_id: str, name: str, headers: Mapping[str, str], body: BodyReader
    ) -> Coroutine[Any, Any, Reply | Opened]:
        """InvokeEndpointWithResponseStream on `name` (streaming.py)."""
        endpoint = self._by_name.get(name)
        if endpoint is None:
            return self._unknown(request_id, name)
        return invoke_stream(endpoint, request_id, headers, body)

    def invoke_async(
        self, request_id: str, name: str, headers: Mapping[str, str]
    ) -> Coroutine[Any, Any, Reply]:
        """InvokeEndpointAsync on `name`."""
        endpoint = self._by_name.get(name)
        if endpoint is None:
            return self._unknown(request_id, name)
        return endpoint.invoke_async(request_id, headers)

    async def _unknown(self, request_id: str, name: str) -> Reply:
        return unknown_endpoint(self.account_id, name).to_reply(request_id)

    async def close(self) -> None:
        """The gateway stops: every endpoint, served or retired, lets go of what it holds."""
        for endpoint in [*self._by_name.values(), *self._retired]:
            await endpoint.close()
        self._retired = []
