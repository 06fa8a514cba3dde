"""The classical test-time-scaling strategies that fit a budget: the incumbent a search must beat.

A search with a small agent proposes noise often enough that its result must be checked against
what needs no search at all: each model alone, self-consistency (k samples of one model and a
majority vote), a refinement chain and parallel samples fused by one more call. `classical_graphs`
lists, for a search space, every such graph that fits its budget, costed like the search's own
graphs: the worker count of a strategy obeys the same integer unit costs as the search's model
mixes (`SearchSpace.unit_costs` against the node budget b) and the whole graph the FLOPs ceiling
(`SearchSpace.fits`). The output model is the strategy's own model: a classical graph is not bound
to the search space's fixed output model (a user comparing strategies would not bind it either).
"""

from __future__ import annotations

from dataclasses import dataclass

from ttsgraph.graph import Graph, chain, parallel, self_consistency, single
from ttsgraph.search.space import SearchSpace

ORIGIN = "classical"  # the trial meta's `origin` of a classical strategy


@dataclass(frozen=True)
class Classical:
    """One named classical strategy: `name` for tables, `kind` (single, self-consistency, chain,
    parallel-fuse), its `graph` and its planned cost in units."""

    name: str
    kind: str
    graph: Graph
    units: float

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "kind": self.kind, "units": self.units, "graph": self.graph.to_dict()}


def classical_graphs(space: SearchSpace) -> list[Classical]:
    """Every classical strategy that fits `space`'s budget, cheapest kinds first, per model in pool
    size order: the model alone; self-consistency for every k >= 3 whose k workers fit the node
    budget (k = 2 answers exactly as the model alone: a tie goes to the first sample, which is the
    single call, so it would only take a finalist's place in the race); the longest refinement
    chain that fits (k >= 1 refiners after the first answer); the widest parallel-then-fuse graph
    (n >= 2 samples) that fits. Duplicates (same canonical graph) are listed once."""
    costs = space.unit_costs()
    b = space.node_budget
    cap = space.max_nodes if space.max_nodes is not None else b
    found: list[Classical] = []
    seen: set[str] = set()

    def add(name: str, kind: str, graph: Graph) -> bool:
        if not space.fits(graph):
            return False
        h = graph.canonical_hash()
        if h not in seen:
            seen.add(h)
            found.append(Classical(name, kind, graph, space.units(graph)))
        return True

    for m in space.models:
        add(f"{m} alone", "single", single(m))
    for m in space.models:
        most = min(b // costs[m], cap)
        for k in range(3, most + 1):
            add(f"self-consistency {k}×{m}", "self-consistency", self_consistency(k, m))
        for k in range(most, 0, -1):  # chain(k): k workers, then the output refines the last answer
            if add(f"refinement chain of {k + 1} {m} calls", "chain", chain(k, m)):
                break
        for n in range(most, 1, -1):
            if add(f"{n}×{m} fused by {m}", "parallel-fuse", parallel(n, m, m)):
                break
    return found


def name_of(meta: dict[str, object]) -> str | None:
    """The classical strategy's name recorded in a trial's meta (None: not a classical trial)."""
    if meta.get("origin") == ORIGIN:
        return str(meta.get("name", "classical"))
    return None


__all__ = ["Classical", "ORIGIN", "classical_graphs", "name_of"]
