"""An endpoint's production variants: which one answers a request.

SageMaker splits an endpoint's traffic between its variants by weight, unless the caller names
one (TargetVariant). The split here is a fixed cycle of slots laid out once per set of weights
(smooth weighted round robin), so picking a variant is one step along the cycle: O(1), and over
any window of requests the split is as close to the weights as whole requests allow.
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
    """Variant name -> what serves it, with the weights that split traffic between them."""

    def __init__(self, endpoint_name: str, served: Mapping[str, tuple[T, float]]) -> None:
        self.endpoint_name = endpoint_name
        self.by_name = {name: item for name, (item, _weight) in served.items()}
        self.weights = {name: weight for name, (_item, weight) in served.items()}
        names = list(served)
        self._cycle = [self.by_name[names[i]] for i in weighted_cycle(list(self.weights.values()))]
        self._next = 0

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
            return found
        i = self._next
        self._next = (i + 1) % len(self._cycle)
        return self._cycle[i]
