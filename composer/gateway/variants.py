"""An endpoint's production variants and their instances: which one answers a request.

SageMaker splits an endpoint's traffic between its variants by weight, unless the caller names
one (TargetVariant), and spreads a variant's share over its instances. The split between
variants here is a fixed cycle of slots laid out once per set of weights (smooth weighted round
robin), so picking a variant is one step along the cycle: O(1), and over any window of requests
the split is as close to the weights as whole requests allow. Within the variant the instance
with the fewest requests in flight answers (ties: the next in turn), a look at each of its
instances: the local SageMaker runs at most 4 of a variant, so that is bounded too.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
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


class _Instances(Generic[T]):
    """One variant's instances, and whose turn is next among equally loaded ones."""

    def __init__(self, items: list[T]) -> None:
        self.items = items
        self.next = 0


class Variants(Generic[T]):
    """Variant name -> its instances, with the weights that split traffic between variants.

    `load`: an instance's requests in flight (None: the instances of a variant take turns).
    """

    def __init__(
        self,
        endpoint_name: str,
        served: Mapping[str, tuple[Sequence[T], float]],
        load: Callable[[T], int] | None = None,
    ) -> None:
        self.endpoint_name = endpoint_name
        self.by_name = {name: list(items) for name, (items, _weight) in served.items()}
        if not all(self.by_name.values()):
            raise ValueError(f"endpoint {endpoint_name}: every variant needs an instance")
        self.weights = {name: weight for name, (_items, weight) in served.items()}
        self.instances = [item for items in self.by_name.values() for item in items]
        self._load = load
        self._groups = {name: _Instances(items) for name, items in self.by_name.items()}
        groups = list(self._groups.values())
        self._cycle = [groups[i] for i in weighted_cycle(list(self.weights.values()))]
        self._next = 0

    def pick(self, target_variant: str | None) -> T:
        """The named variant (ValidationError if there is none of that name), else the next by
        weight; of its instances, the least loaded."""
        if target_variant is not None:
            group = self._groups.get(target_variant)
            if group is None:
                raise ValidationError(
                    f"Variant {target_variant} does not exist on endpoint {self.endpoint_name}; "
                    f"its production variants are: {', '.join(self.by_name)}."
                )
        else:
            i = self._next
            self._next = (i + 1) % len(self._cycle)
            group = self._cycle[i]
        items = group.items
        count = len(items)
        if count == 1:
            return items[0]
        start = group.next
        best = start
        load = self._load
        if load is not None:
            least = load(items[start])
            for step in range(1, count):
                if not least:
                    break  # none has fewer than none
                j = (start + step) % count
                n = load(items[j])
                if n < least:
                    best, least = j, n
        group.next = (best + 1) % count
        return items[best]
