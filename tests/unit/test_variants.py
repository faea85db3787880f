"""The gateway's split of an endpoint's traffic between its production variants."""

from __future__ import annotations

import pytest

from composer.gateway.errors import ValidationError
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
