"""Random search: the traditional baseline every smarter optimizer must beat (SPEC §7).

Each ask draws a model mix that fits the budget (under-filled too unless `budget_filling`)
uniformly from the search space's combos, places it on a random sparse graph (edge probability ≈ 0.119, the GPTSwarm sampler's initial density), repairs
it to fit the FLOPs budget and asks for it to be scored on one batch of items. It learns nothing;
the study keeps the best graph seen. Its value is as a yardstick: an optimizer that cannot beat
random proposals at the same evaluation budget has learnt nothing either.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from ttsgraph.search.base import Optimizer, MixOptions, Proposal, register
from ttsgraph.search.space import DEFAULT_EDGE_P, SearchSpace


@register
class RandomSearch(Optimizer):
    """`random`: a random mix that fits the budget on a random sparse graph, every ask."""

    class Options(MixOptions):
        edge_p: float = Field(DEFAULT_EDGE_P, ge=0.0, le=1.0, description="probability of each potential edge")
        vote_p: float = Field(0.2, ge=0.0, le=1.0, description="probability that the output is a vote")

    name = "random"
    opts: Options

    def __init__(self, space: SearchSpace, **kwargs: Any) -> None:  # seed, iterations, batch, context, options
        super().__init__(space, **kwargs)
        self._combos = space.combos(self.opts.budget_filling)

    async def ask(self) -> list[Proposal]:
        counts = self._combos[int(self.rng.integers(len(self._combos)))]
        graph = self.space.random_graph(counts, self.rng, self.opts.edge_p,  # already repaired to the budget
                                        vote_p=self.opts.vote_p)
        return [Proposal(graph, self.batch, {"counts": dict(counts)})]
