"""The endpoints one gateway serves, by name: the URL's endpoint name is looked up here.

A lookup is one dict access, and a request keeps the endpoint it found. So serving an endpoint
(`put`), replacing it (`put` again under its name) or removing it (`remove`) is atomic for
requests: one that arrived before the change is answered by the endpoint it found, one after by
the new one (or as an unknown endpoint), never by half of each. Call these on the gateway's loop.
"""

from __future__ import annotations

from collections.abc import Coroutine, Mapping, Sequence
from typing import Any

from .config import GatewayConfig, GatewaySettings, Health
from .endpoint import H_TARGET_VARIANT, BodyReader, Endpoint
from .errors import GatewayError, unknown_endpoint
from .metrics import GatewayMetrics
from .reply import Reply
from .sessions import H_SESSION, NEW_SESSION
from .streaming import Opened, invoke_stream
from .trace import Trace
from .variants import Variants


def _in_flight(endpoint: Endpoint) -> int:
    return endpoint.in_flight


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
        #: Endpoints of several production variants (variants.py picks one per request); a
        #: name is in one of the two dicts, so a one-variant endpoint's lookup stays one access.
        self._variants: dict[str, Variants[Endpoint]] = {}
        self._retired: list[Endpoint] = []  # replaced or removed, async requests still queued

    @property
    def names(self) -> list[str]:
        return sorted([*self._by_name, *self._variants])

    def get(self, name: str) -> Endpoint | None:
        return self._by_name.get(name)

    def serving(self, name: str) -> list[Endpoint]:
        """Every endpoint answering for `name`: one, or one per variant instance."""
        single = self._by_name.get(name)
        if single is not None:
            return [single]
        several = self._variants.get(name)
        return list(several.instances) if several is not None else []

    def put(self, config: GatewayConfig, health: Health | None = None) -> Endpoint:
        """Serve `config` under its name, in place of any endpoint of that name (one served with
        this very config and health goes on serving, its sessions open: see `put_variants`)."""
        old = self._pop(config.endpoint_name)
        new = self._kept(old, config, health) or self._endpoint(config, health)
        self._by_name[config.endpoint_name] = new
        self._replaced(old, [new])
        return new

    def put_variants(
        self, variants: Sequence[tuple[GatewayConfig, float, Health | None]]
    ) -> list[Endpoint]:
        """Serve one endpoint of several production variants or instances (config, weight,
        health each; one entry per instance, instances of a variant share its config's
        variant_name), in place of any endpoint of that name; traffic is split by weight over
        the variants, and a variant's share goes to its instance with the fewest InvokeEndpoint
        requests in flight (variants.py).

        An instance already served with an equal config and the same health (its containers
        kept: a weight change, or a count change that adds or removes other copies) is kept as
        it is, with its open sessions, connections and requests in flight.
        """
        names = {config.endpoint_name for config, _w, _h in variants}
        if len(names) != 1:
            raise ValueError(f"variants of one endpoint share its name; got {sorted(names)}")
        (name,) = names
        old = self.serving(name)
        served: dict[str, tuple[list[Endpoint], float]] = {}
        for config, weight, health in variants:
            copies, _weight = served.setdefault(config.variant_name, ([], weight))
            copies.append(self._kept(old, config, health) or self._endpoint(config, health))
        picker = Variants(name, served, load=_in_flight)
        self._pop(name)
        self._variants[name] = picker
        new = picker.instances
        self._replaced(old, new)
        return new

    def variants(self, name: str) -> Variants[Endpoint] | None:
        return self._variants.get(name)

    def _endpoint(self, config: GatewayConfig, health: Health | None) -> Endpoint:
        for what, got, gateway in (
            ("max_payload_bytes", config.max_payload_bytes, self.max_payload_bytes),
            ("client_timeout", config.client_timeout, self.client_timeout),
        ):
            if got != gateway:
                raise ValueError(
                    f"endpoint {config.endpoint_name}: {what} is {got}, but this gateway's is "
                    f"{gateway}: every endpoint of one gateway has the gateway's"
                )
        endpoint = Endpoint(config, health, self.metrics.endpoint(config))
        endpoint.trace = self.trace
        return endpoint

    @staticmethod
    def _kept(old: list[Endpoint], config: GatewayConfig, health: Health | None) -> Endpoint | None:
        for endpoint in old:
            if endpoint.config == config and endpoint.health is health:
                return endpoint
        return None

    def _pop(self, name: str) -> list[Endpoint]:
        """What serves `name` now (one endpoint, or one per variant), no longer looked up."""
        single = self._by_name.pop(name, None)
        if single is not None:
            return [single]
        several = self._variants.pop(name, None)
        return several.instances if several is not None else []

    def _replaced(self, old: list[Endpoint], new: list[Endpoint]) -> None:
        """Retire what no longer serves (a kept endpoint is in both lists and goes on)."""
        by_copy = {(e.config.variant_name, e.config.instance_id): e for e in new}
        for endpoint in old:
            if any(endpoint is e for e in new):
                continue
            successor = by_copy.get((endpoint.config.variant_name, endpoint.config.instance_id))
            endpoint.metrics.forget(keep=successor.metrics if successor is not None else None)
            self._retire(endpoint)

    def remove(self, name: str) -> Endpoint | None:
        """Stop serving `name` (its requests in flight are still answered); the endpoint, if any
        (the first variant's, for one of several)."""
        old = self._pop(name)
        self._replaced(old, [])
        return old[0] if old else None

    def _lookup(self, name: str, headers: Mapping[str, str]) -> Endpoint | None:
        """The endpoint (the variant's) that answers; GatewayError for an unknown variant."""
        endpoint = self._by_name.get(name)
        if endpoint is not None:
            return endpoint
        several = self._variants.get(name)
        if several is None:
            return None
        session = headers.get(H_SESSION)
        if session is not None and session != NEW_SESSION:  # to the instance that opened it
            for endpoint in several.instances:
                if session in endpoint.sessions.open:
                    return endpoint
        return several.pick(headers.get(H_TARGET_VARIANT))

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
            try:
                endpoint = self._lookup(name, headers)
            except GatewayError as e:
                return self._refused(request_id, e)
            if endpoint is None:
                return self._unknown(request_id, name)
        return endpoint.invoke(request_id, headers, body)

    def invoke_stream(
        self, request_id: str, name: str, headers: Mapping[str, str], body: BodyReader
    ) -> Coroutine[Any, Any, Reply | Opened]:
        """InvokeEndpointWithResponseStream on `name` (streaming.py)."""
        try:
            endpoint = self._lookup(name, headers)
        except GatewayError as e:
            return self._refused(request_id, e)
        if endpoint is None:
            return self._unknown(request_id, name)
        return invoke_stream(endpoint, request_id, headers, body)

    def invoke_async(
        self, request_id: str, name: str, headers: Mapping[str, str]
    ) -> Coroutine[Any, Any, Reply]:
        """InvokeEndpointAsync on `name`."""
        try:
            endpoint = self._lookup(name, headers)
        except GatewayError as e:
            return self._refused(request_id, e)
        if endpoint is None:
            return self._unknown(request_id, name)
        return endpoint.invoke_async(request_id, headers)

    async def _unknown(self, request_id: str, name: str) -> Reply:
        return unknown_endpoint(self.account_id, name).to_reply(request_id)

    async def _refused(self, request_id: str, error: GatewayError) -> Reply:
        return error.to_reply(request_id)

    async def close(self) -> None:
        """The gateway stops: every endpoint, served or retired, lets go of what it holds."""
        served = [e for v in self._variants.values() for e in v.instances]
        for endpoint in [*self._by_name.values(), *served, *self._retired]:
            await endpoint.close()
        self._retired = []
