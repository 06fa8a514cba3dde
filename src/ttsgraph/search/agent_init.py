"""Agent-REINFORCE's initialization (SPEC §4.1, §4.4): the agent's picks among the
model mixes, the smaller variants of each pick, and the one-item pretest that chooses among them.

Kept apart from the update round because it is a different question to the agent (which models,
not which edges) with its own fallback (random picks), and TextGrad replaces it wholesale. The
pretest's and the initial graph are drawn by the GPTSwarm sampler (`swarm_draw`), as the paper's
were: sparse graphs whose unreached workers are dropped, not every worker wired in.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from ttsgraph.graph import Graph, Node
from ttsgraph.search.agent_prompts import edge_key
from ttsgraph.search.agent_replies import parse_init_reply
from ttsgraph.search.agent_state import Counts, Phase
from ttsgraph.search.agent_update import potential, sample_from_table
from ttsgraph.search.base import Evaluation, Proposal
from ttsgraph.search.space import OUTPUT_ID, SearchSpace, worker_id

PRETEST_EDGE_P = 0.5  # the pretest's random graphs: edges ~ Bern(sigmoid(0)) (SPEC §4.1)


def combos_of(space: SearchSpace, budget_filling: bool = False) -> list[Counts]:
    """The mixes that fit the budget (under-filled ones too unless `budget_filling`) with every
    pool model listed (0 where unused), smallest model first."""
    return [{m: int(c.get(m, 0)) for m in space.models} for c in space.combos(budget_filling)]


def picks_parser(combos: Sequence[Mapping[str, int]], picks: int, models: Sequence[str]) -> Callable[[str], list[Counts]]:
    """The parser of an init reply: the picked mixes, every model listed, without duplicates."""

    def parse(text: str) -> list[Counts]:
        unique: list[Counts] = []
        for p in parse_init_reply(text, combos, picks):
            full = {m: int(p.get(m, 0)) for m in models}
            if full not in unique:
                unique.append(full)
        return unique

    return parse


def random_picks(combos: Sequence[Counts], picks: int, rng: np.random.Generator) -> list[Counts]:
    """The fallback when the agent cannot pick: `picks` distinct mixes at random."""
    return [combos[int(k)] for k in rng.permutation(len(combos))[:picks]]


def variants(picked: Sequence[Counts], models: Sequence[str], per_pick: int) -> list[Counts]:
    """Each pick, then copies with one more of the smallest remaining model removed, up to
    `per_pick` per pick (SPEC §4.1), without duplicates. `models` is smallest first."""
    out: list[Counts] = []
    for pick in picked:
        chain = [dict(pick)]
        cur = dict(pick)
        for model in models:
            while cur.get(model, 0) > 0 and len(chain) < per_pick:
                cur = dict(cur)
                cur[model] -= 1
                if sum(cur.values()) > 0:
                    chain.append(cur)
        for c in chain:
            if c not in out:
                out.append(c)
    return out


def swarm_draw(space: SearchSpace, counts: Mapping[str, int], rng: np.random.Generator, edge_p: float) -> Graph:
    """A graph of the GPTSwarm sampler (SPEC §3.2) with these worker counts: the models placed on
    `n1..nk` at random, every potential edge (both directions, then worker → output) walked in a
    fixed order and kept with probability `edge_p` unless it closes a cycle, redrawn until the
    output has a predecessor, roles by the sampler's rule. Workers the draw leaves without a path to
    the output stay in it (they are not run); nothing is repaired yet."""
    models = space.placement(counts, rng)
    ids = [worker_id(k) for k in range(len(models))]
    placement = Graph([Node(i, m) for i, m in zip(ids, models)] + [Node(OUTPUT_ID, space.output_candidates()[0])],
                      [], OUTPUT_ID)
    table = {edge_key(u, v): edge_p for u, v in potential(ids, OUTPUT_ID)}
    return sample_from_table(space, table, placement, rng)


def pretest_proposals(space: SearchSpace, mixes: Sequence[Counts], rng: np.random.Generator) -> list[Proposal]:
    """One sampled all-assistant graph per mix (edges at p = 0.5), each scored on one item: a
    screening probe that chooses the mix and never competes for the selected graph (`candidate=False`)."""
    proposals = []
    for k, counts in enumerate(mixes):
        g = swarm_draw(space, counts, rng, PRETEST_EDGE_P)
        g = space.repair(Graph([Node(n.id, n.model, "assistant") for n in g.nodes], list(g.edges), g.output))[0]
        proposals.append(Proposal(g, 1, {"phase": Phase.PRETEST.value, "variant": k, "counts": counts},
                                  candidate=False))
    return proposals


def choose_variant(evaluations: Sequence[Evaluation], rng: np.random.Generator) -> int:
    """The best-scoring pretest variant, ties broken at random."""
    scores = [e.utility for e in evaluations]
    tied = [k for k, s in enumerate(scores) if s == max(scores)]
    return tied[int(rng.integers(len(tied)))] if len(tied) > 1 else tied[0]
