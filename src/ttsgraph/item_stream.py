"""The order in which a study meets its search items.

Every optimizer in a study (and every seed of a bench) must see the same items in the same order
for their scores to be comparable, and a resumed study must continue exactly where it stopped: the
stream is a pure function of (items, seed, position), with nothing to store.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from ttsgraph.errors import TtsGraphError


class ItemStream:
    """A deterministic, endless walk over the search items: a seeded permutation, reshuffled with
    a new seed (derived from the run seed and the pass number) each time it wraps around."""

    def __init__(self, items: Sequence[Any], seed: int) -> None:
        if not items:
            raise TtsGraphError("the task's search split is empty: nothing to search on")
        self.items = list(items)
        self.seed = seed
        self._orders: dict[int, list[int]] = {}

    def _order(self, epoch: int) -> list[int]:
        if epoch not in self._orders:
            order = list(range(len(self.items)))
            random.Random(f"ttsgraph-stream/{self.seed}/{epoch}").shuffle(order)
            self._orders[epoch] = order
        return self._orders[epoch]

    def take(self, start: int, n: int) -> list[Any]:
        """Items at stream positions start .. start+n-1."""
        size = len(self.items)
        return [self.items[self._order(p // size)[p % size]] for p in range(start, start + n)]


__all__ = ["ItemStream"]
