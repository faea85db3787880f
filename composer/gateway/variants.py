"""An endpoint's production variants and their instances: which one answers a request.

SageMaker splits an endpoint's traffic between its variants by weight, unless the caller names
one (TargetVariant), and spreads a variant's share over its instances. The split here is a fixed
cycle of slots laid out once per set of weights (smooth weighted round robin, each instance
holding an equal part of its variant's weight), so picking is one step along the cycle: O(1),
and over any window of requests the split is as close to the weights as whole requests allow.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Generic, TypeVar

from .errors import ValidationError

T = TypeVar("T")

#: Slots in one cycle: weights are rounded to hundredths of the total.
CYCLE = 100


def weighted_cycle(weights: Sequence[float], slots: int = CYCLE) -> list[int]:
    """Indices into `weights`, each appearing in proportion to its weight, spread evenly
    (every weight 0: equal shares)."""
    if not weights or any(w < 0 for w in weights):
        raise ValueError(f"variant weights: got {list(weights)}; allowed: one or more, >= 0")
    if sum(weights) <= 0:
        weights = [1.0] * len(weights)
    total = sum(weights)
    current = [0.0] * len(weights)
    order: list[int] = []
    for _ in range(slots):
        for i, w in enumerate(weights):
            current[i] += w
        best = max(range(len(weights)), key=current.__getitem__)
        current[best] -= total
        order.append(best)
    return order


class Variants(Generic[T]):
    """Variant name -> its instances, with the weights that split traffic between variants."""

    def __init__(self, endpoint_name: str, served: Mapping[str, tuple[Sequence[T], float]]) -> None:
        self.endpoint_name = endpoint_name
        self.by_name = {name: list(items) for name, (items, _weight) in served.items()}
        if not all(self.by_name.values()):
            raise ValueError(f"endpoint {endpoint_name}: every variant needs an instance")
        self.weights = {name: weight for name, (_items, weight) in served.items()}
        self.instances = [item for items in self.by_name.values() for item in items]
        shares = [
            weight / len(self.by_name[name]) if weight > 0 else 0.0
            for name, weight in self.weights.items()
            for _ in self.by_name[name]
        ]
        if not any(shares):
            shares = [1.0] * len(shares)
        self._cycle = [self.instances[i] for i in weighted_cycle(shares)]
        self._next = 0
        self._next_of = dict.fromkeys(self.by_name, 0)  # TargetVariant: round robin per variant

    def pick(self, target_variant: str | None) -> T:
        """The named variant (ValidationError if there is none of that name), else the next by
        weight."""
        if target_variant is not None:
            found = self.by_name.get(target_variant)
            if found is None:
                raise ValidationError(
                    f"Variant {target_variant} does not exist on endpoint {self.endpoint_name}; "
                    f"its production variants are: {', '.join(self.by_name)}."
                )
            n = self._next_of[target_variant]
            self._next_of[target_variant] = (n + 1) % len(found)
            return found[n]
        i = self._next
        self._next = (i + 1) % len(self._cycle)
        return self._cycle[i]
