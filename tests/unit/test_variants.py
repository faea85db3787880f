"""The gateway's split of an endpoint's traffic between its production variants."""

from __future__ import annotations

import asyncio

import pytest

from composer.gateway.config import GatewayConfig, GatewaySettings, Upstream
from composer.gateway.errors import ValidationError
from composer.gateway.metrics import ENDPOINT_LEVEL, GatewayMetrics
from composer.gateway.registry import EndpointRegistry
from composer.gateway.sessions import Session
from composer.gateway.variants import Variants, weighted_cycle


def test_a_cycle_holds_each_variant_in_proportion_and_spreads_them() -> None:
    order = weighted_cycle([1.0, 3.0])
    assert order.count(0) == 25 and order.count(1) == 75
    assert order[:4].count(0) == 1  # spread, not 25 in a row
    assert weighted_cycle([0.0, 2.0]).count(0) == 0
    assert weighted_cycle([0.0, 0.0]).count(0) == 50  # no weight at all: equal shares


def test_negative_weights_are_refused() -> None:
    with pytest.raises(ValueError, match=r"got \[-1\.0\]"):
        weighted_cycle([-1.0])


def test_target_variant_picks_one_and_an_unknown_one_is_refused() -> None:
    variants = Variants("e", {"a": (["A"], 1.0), "b": (["B1", "B2"], 3.0)})
    picked = [variants.pick(None) for _ in range(8)]
    assert picked.count("A") == 2 and picked.count("B1") == 3 and picked.count("B2") == 3
    assert variants.pick("a") == "A"
    assert [variants.pick("b") for _ in range(4)] == ["B1", "B2", "B1", "B2"]
    with pytest.raises(ValidationError, match="Variant c does not exist on endpoint e; its "):
        variants.pick("c")


def _copy(instance: str, variant: str = "v", hosts: tuple[str, ...] = ("a", "b")) -> GatewayConfig:
    ups = tuple(Upstream(h, f"http://127.0.0.1:{9000 + i}") for i, h in enumerate(hosts))
    return GatewayConfig("e", "Direct", ups, variant_name=variant, instance_id=instance)


def test_log_streams_are_sagemakers_variant_instance_and_container() -> None:
    config = _copy("local-2")
    assert config.log_stream_arn("b") == (
        "arn:aws:logs:us-east-1:000000000000:log-group:/aws/sagemaker/Endpoints/e"
        ":log-stream:v/local-2/b"
    )
    single = GatewayConfig("e", "Serial", (Upstream("m", "http://127.0.0.1:1"),))
    assert single.log_stream("m") == "AllTraffic/local-1"  # one container: no hostname


def test_metrics_carry_endpoint_variant_container_and_instance() -> None:
    metrics = GatewayMetrics()
    first = metrics.endpoint(_copy("local-1"))
    assert first.dimensions("a") == {
        "EndpointName": "e",
        "VariantName": "v",
        "ContainerName": "a",
        "InstanceId": "local-1",
    }
    assert "ContainerName" not in first.dimensions(ENDPOINT_LEVEL)
    first.of("a").invocations.inc()
    metrics.endpoint(_copy("local-2")).of("a").invocations.inc(2)
    text = metrics.render().decode()
    assert (
        'Invocations_total{container="a",endpoint="e",instance="local-1",variant="v"} 1.0' in text
    )
    assert (
        'Invocations_total{container="a",endpoint="e",instance="local-2",variant="v"} 2.0' in text
    )


def test_serving_the_same_copies_again_keeps_them_and_their_sessions() -> None:
    """New weights, or another copy added or removed: a copy served with an equal config and
    the same health goes on as it was (its session table too); only a removed one retires."""

    class Up:
        def is_up(self, hostname: str) -> bool:
            return True

    health = [Up(), Up(), Up()]
    registry = EndpointRegistry(GatewayMetrics(), GatewaySettings())
    one = registry.put(_copy("local-1"), health[0])
    one.sessions.open["s1"] = Session("s1", 2e9, "2033-05-18T03:33:20Z", "a")
    two = registry.put_variants(
        [(_copy("local-1"), 1.0, health[0]), (_copy("local-2"), 1.0, health[1])]
    )
    assert two[0] is one and "s1" in two[0].sessions.open
    again = registry.put_variants(
        [(_copy("local-1"), 5.0, health[0]), (_copy("local-2"), 1.0, health[1])]
    )
    assert again[0] is one and again[1] is two[1]
    other = registry.put_variants(
        [(_copy("local-1"), 1.0, health[2]), (_copy("local-2"), 1.0, health[1])]
    )
    assert other[0] is not one and other[1] is two[1]  # other containers (health): a new endpoint
    assert registry.put(_copy("local-2"), health[1]) is two[1]
    assert registry.serving("e") == [two[1]]
    asyncio.run(registry.close())


def test_the_least_loaded_instance_of_the_variant_answers_ties_take_turns() -> None:
    in_flight = {"A": 0, "B1": 2, "B2": 0, "B3": 1}
    variants = Variants(
        "e", {"a": (["A"], 0.0), "b": (["B1", "B2", "B3"], 1.0)}, load=in_flight.__getitem__
    )
    assert [variants.pick(None) for _ in range(3)] == ["B2", "B2", "B2"]
    in_flight["B2"] = 1
    assert [variants.pick("b") for _ in range(4)] == ["B3", "B2", "B3", "B2"]  # ties: in turn
    in_flight.update(B1=0, B2=0, B3=0)
    assert [variants.pick("b") for _ in range(3)] == ["B3", "B1", "B2"]
