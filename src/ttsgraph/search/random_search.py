"""Random search: the traditional baseline every smarter optimizer must beat (SPEC §7).

Each ask draws a budget-filling model mix uniformly from the search space's combos, places it on
a random sparse graph (edge probability ≈ 0.119, the GPTSwarm sampler's initial density), repairs
it to fit the FLOPs budget and asks for it to be scored on one batch of items. It learns nothing;
the study keeps the best graph seen. Its value is as a yardstick: an optimizer that cannot beat
random proposals at the same evaluation budget has learnt nothing either.
"""

from __future__ import annotations

from typing import Any

from ttsgraph.search.base import Optimizer, Proposal, register

# sigmoid(-2): the initial edge density of the GPTSwarm sampler at temperature 1 (SPEC §3.2).
DEFAULT_EDGE_P = 0.119


@register
class RandomSearch(Optimizer):
    """`random`: options `edge_p` (default 0.119)."""

    name = "random"

    def __init__(self, space: Any, *, seed: int = 0, iterations: int = 10, batch: int = 3, **options: Any) -> None:
        super().__init__(space, seed=seed, iterations=iterations, batch=batch, **options)
        self.edge_p = float(options.get("edge_p", DEFAULT_EDGE_P))
        if not 0.0 <= self.edge_p <= 1.0:
            from ttsgraph.errors import TtsGraphError

            raise TtsGraphError(f"random: edge_p must be in [0, 1], got {self.edge_p}")
        self._combos = space.combos()

    async def ask(self) -> list[Proposal]:
        counts = self._combos[int(self.rng.integers(len(self._combos)))]
        graph = self.space.random_graph(counts, self.rng, self.edge_p)  # already repaired to the budget
        return [Proposal(graph, self.batch, {"counts": dict(counts)})]
