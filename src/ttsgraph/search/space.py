"""The search space: which graphs a search may propose, at what cost, and how one is repaired.

Every optimizer (Agent-REINFORCE and every baseline) draws from the same `SearchSpace`, so they all
compete for the same budget with the same rules:

- the budget is in normalized units (SPEC §2.3); a budget given in units maps to the node budget b
  of the largest reference graph that fits, which is what the model-count mixes are built from;
- each model has an integer unit cost, and the mixes (`combos`) are the worker counts that fit b:
  the budget is a ceiling, not a target, so under-filled mixes are candidates too
  (`budget_filling=True`: only those with the smallest leftover, as the paper's code does). The
  costs are given (the paper's table for its own pool and tasks, `unit_costs.paper_unit_costs`) or
  derived: a model's d=0 cost in units, rounded, at least 1 — which is *not* the paper's table (its
  8B costs 9, not 8);
- the output node is the pool's `output` model (the paper fixes it) unless `output_model=None`,
  in which case its model is searched like the others;
- a graph over budget is repaired by deleting its smallest-model node until it fits, never
  scored as a failure.

The role rules live in `role_rules`, the GPTSwarm distribution over graphs in `prob_graph`; both
name nodes as this module does (`worker_id`, `OUTPUT_ID`).
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Mapping
from typing import Any

import numpy as np

from ttsgraph.cost import (MAX_NODE_BUDGET, Budget, TaskLengths, planned_node_flops, planned_units,
                           reference_bound_units, unit_flops)
from ttsgraph.errors import BudgetError, GraphError
from ttsgraph.graph import Graph, Node
from ttsgraph.models import ModelPool
from ttsgraph.search.role_rules import as_vote_output, assign_roles, fix_roles

OUTPUT_ID = "out"
DEFAULT_EDGE_P = 0.119
"""sigmoid(−2): the GPTSwarm sampler's initial edge density at temperature 1 (SPEC §3.2), which
random graphs use too."""
_POOL_OUTPUT: Any = object()  # sentinel: "the pool's output model" (None means "searched")


def worker_id(k: int) -> str:
    """Slot k (0-based) is node `n{k+1}`; the output is always `out`."""
    return f"n{k + 1}"


class SearchSpace:
    """The pool, the task lengths, the budget and the output node's model.

    `temperature` is the sampling temperature of worker LLM calls (the paper's preset: 0.1);
    `edge_temperature` is the GPTSwarm sampler's: an edge with logit ℓ is drawn with probability
    sigmoid(ℓ − 2/edge_temperature), so fresh graphs start sparse (0.119 at temperature 1).
    `max_nodes` caps the worker nodes of any mix (default: no cap beyond the budget).
    `unit_costs` gives every pool model's integer cost for the mixes (default: derived, see
    `unit_costs()`); the runtime passes the paper's table for the paper's pool and tasks.
    """

    def __init__(
        self,
        pool: ModelPool,
        lengths: TaskLengths,
        budget: Budget,
        output_model: str | None = _POOL_OUTPUT,
        max_nodes: int | None = None,
        temperature: float = 0.1,
        edge_temperature: float = 1.0,
        unit_costs: Mapping[str, int] | None = None,
    ) -> None:
        self.pool = pool
        self.lengths = lengths
        self.budget = budget
        self.output_model: str | None = pool.output if output_model is _POOL_OUTPUT else output_model
        if self.output_model is not None:
            pool.spec(self.output_model)
        if max_nodes is not None and max_nodes < 1:
            raise BudgetError(f"max_nodes must be >= 1, got {max_nodes}")
        if edge_temperature <= 0:
            raise BudgetError(f"edge_temperature must be > 0, got {edge_temperature}")
        self.max_nodes = max_nodes
        self.temperature = temperature
        self.edge_temperature = edge_temperature
        self.models: list[str] = pool.by_size()  # smallest first
        self._unit = unit_flops(pool, lengths)
        self._given_costs = self._checked_costs(unit_costs)
        self.node_budget = budget.nodes if budget.nodes is not None else self._node_budget_for(budget.units)
        if self.node_budget < 1:
            raise BudgetError(
                f"budget {budget.units:.2f} units is below the smallest reference graph "
                f"(b=1: {reference_bound_units(1, pool, lengths):.2f} units): no graph with a worker fits"
            )
        smallest_output = self.output_model or self.models[0]
        if self.node_units(smallest_output, 0) > budget.units + 1e-9:
            raise BudgetError(f"budget {budget.units:.2f} units cannot pay even the output node ({smallest_output})")

    # ----- costs ---------------------------------------------------------------------------
    def _node_budget_for(self, units: float) -> int:
        """The largest b whose reference graph costs at most `units` (0 if even b=1 does not)."""
        b = 0
        while b < MAX_NODE_BUDGET and reference_bound_units(b + 1, self.pool, self.lengths) <= units + 1e-9:
            b += 1
        return b

    def node_units(self, model: str, in_degree: int) -> float:
        """Planned cost of one node in units."""
        return planned_node_flops(self.pool.spec(model), self.lengths, in_degree) / self._unit

    def units(self, graph: Graph) -> float:
        """Planned cost of the graph in units, after dropping nodes that cannot reach the output."""
        return planned_units(graph.pruned()[0], self.pool, self.lengths)

    def fits(self, graph: Graph) -> bool:
        return self.units(graph) <= self.budget.units + 1e-9

    def _checked_costs(self, costs: Mapping[str, int] | None) -> dict[str, int] | None:
        if costs is None:
            return None
        missing = [m for m in self.models if m not in costs]
        bad = [m for m in self.models if m in costs and (not isinstance(costs[m], int) or costs[m] < 1)]
        if missing or bad:
            raise BudgetError("unit costs must give every pool model an integer >= 1"
                              + (f"; missing {', '.join(missing)}" if missing else "")
                              + (f"; invalid for {', '.join(bad)}" if bad else ""))
        return {m: int(costs[m]) for m in self.models}

    def unit_costs(self) -> dict[str, int]:
        """Integer node costs for model mixes: the given table, else each model's d=0 cost in
        units, rounded, at least 1."""
        if self._given_costs is not None:
            return dict(self._given_costs)
        return {m: max(1, int(round(self.node_units(m, 0)))) for m in self.models}

    def combos(self, budget_filling: bool = False) -> list[dict[str, int]]:
        """Worker model counts whose unit costs fit the node budget (SPEC §2.3's mixes).

        The budget is a ceiling: every mix that fits is listed, under-filled ones too, so a search
        can find that fewer or smaller nodes do as well (they often do with small models).
        `budget_filling=True` keeps only the mixes with the smallest leftover, as the paper's code
        does. Counts include every pool model (zeros too), keys in pool size order; the list goes
        from the mixes that spend the most to those that spend the least, and within one spend
        from those with the largest models to those with the most small ones.
        """
        costs = self.unit_costs()
        b = self.node_budget
        cap = self.max_nodes if self.max_nodes is not None else b
        found: list[tuple[int, ...]] = []
        order = self.models[::-1]  # largest first, like the paper's listing

        def walk(k: int, left: int, nodes: int, acc: list[int]) -> None:
            if k == len(order):
                if nodes > 0:
                    found.append(tuple(acc))
                return
            c = costs[order[k]]
            for n in range(min(left // c, cap - nodes), -1, -1):
                acc.append(n)
                walk(k + 1, left - n * c, nodes + n, acc)
                acc.pop()

        walk(0, b, 0, [])
        if not found:
            return []
        spent = [sum(n * costs[m] for n, m in zip(t, order)) for t in found]
        best = max(spent)
        ranked = sorted(range(len(found)), key=lambda k: -spent[k])  # stable: walk order within a spend
        return [{m: n for m, n in sorted(zip(order, found[k]), key=lambda x: self.models.index(x[0]))}
                for k in ranked if spent[k] == best or not budget_filling]

    # ----- graphs --------------------------------------------------------------------------
    def check(self, graph: Graph) -> None:
        """Raise GraphError/BudgetError unless the graph is a member of this space."""
        graph.validate(models=set(self.pool.models))
        out_model = graph.node(graph.output).model
        if self.output_model is not None and out_model is not None and out_model != self.output_model:
            raise GraphError(f"output node {graph.output!r} must use {self.output_model}, not "
                             f"{graph.node(graph.output).model}", node=graph.output)
        if not self.fits(graph):
            raise BudgetError(f"graph costs {self.units(graph):.2f} units, over the budget of {self.budget.units:.2f}")

    def repair(self, graph: Graph) -> tuple[Graph, list[str]]:
        """Delete the smallest-model worker node (ties: the last listed) until the graph fits.

        Dead nodes (no path to the output) are dropped too and reported as removed; fusers left
        without an assistant predecessor become assistants, and votes left without predecessors
        go, so the result validates. Votes cost nothing and are never the node deleted.
        """
        g, removed = graph.pruned()
        removed = list(removed)
        rank = {m: k for k, m in enumerate(self.models)}
        g = fix_roles(g)
        while not self.fits(g):
            workers = [n for n in g.nodes if n.id != g.output and n.model is not None]
            out = g.node(g.output)
            if not workers or out.model is None and len(workers) == 1:
                # a vote output needs one worker left, so the smallest graph is that pair
                what = f"the output node alone ({out.model})" if out.model is not None else "the smallest graph left"
                raise BudgetError(f"{what} costs {self.units(g):.2f} units, over the budget of {self.budget.units:.2f}")
            victim = max(enumerate(workers), key=lambda kv: (-rank.get(kv[1].model, -1), kv[0]))[1]
            g = Graph([n for n in g.nodes if n.id != victim.id],
                      [(u, v) for u, v in g.edges if victim.id not in (u, v)], g.output)
            removed.append(victim.id)
            g, dead = _without_empty_votes(g)
            removed.extend(dead)
            g = fix_roles(g)
        return g, removed

    def placement(self, counts: Mapping[str, int], rng: np.random.Generator) -> list[str]:
        """A mix's worker models in a random order (worker k gets the k-th): how every random graph
        places its models. Unknown models and an empty mix are errors."""
        unknown = set(counts) - set(self.models)
        if unknown:
            raise GraphError(f"unknown model(s) in counts: {', '.join(sorted(unknown))}")
        models = [m for m in self.models for _ in range(int(counts.get(m, 0)))]
        if not models:
            raise BudgetError("a model mix needs at least one worker node")
        rng.shuffle(models)
        return models

    def random_graph(self, counts: Mapping[str, int], rng: np.random.Generator, edge_p: float = DEFAULT_EDGE_P,
                     output_model: str | None = None, vote_p: float = 0.0) -> Graph:
        """A random graph with exactly these worker model counts (before any budget repair).

        Models are placed on `n1..nk` at random; edges follow a random topological order, each
        kept with probability `edge_p`, and each worker reaches the output with probability
        `edge_p`. A dangling worker is then connected to a random later node that reaches the
        output, so every worker is used. Roles follow the sampler's rule (`assign_roles`); with
        probability `vote_p` the output is a vote instead (no model; no draw is made when `vote_p`
        is 0, so seeds keep their graphs). The result is repaired to the budget.
        """
        models = self.placement(counts, rng)
        ids = [worker_id(k) for k in range(len(models))]
        perm = [ids[k] for k in rng.permutation(len(ids))]
        edges: list[tuple[str, str]] = []
        for i, j in itertools.combinations(range(len(perm)), 2):
            if rng.random() < edge_p:
                edges.append((perm[i], perm[j]))
        for u in perm:
            if rng.random() < edge_p:
                edges.append((u, OUTPUT_ID))
        useful = {OUTPUT_ID}
        for i in range(len(perm) - 1, -1, -1):
            u = perm[i]
            if any(v in useful for a, v in edges if a == u):
                useful.add(u)
                continue
            targets = [v for v in perm[i + 1:] if v in useful] + [OUTPUT_ID]
            edges.append((u, targets[int(rng.integers(len(targets)))]))
            useful.add(u)
        if output_model is None:
            cands = self.output_candidates()
            output_model = cands[int(rng.integers(len(cands)))]
        out_model = output_model
        nodes = [Node(i, m) for i, m in zip(ids, models)] + [Node(OUTPUT_ID, out_model)]
        graph = assign_roles(Graph(nodes, edges, OUTPUT_ID), rng)[0]
        if vote_p > 0 and rng.random() < vote_p:
            graph = as_vote_output(graph)
        return self.repair(graph)[0]

    def output_candidates(self) -> list[str]:
        """Models the output node may use: the fixed one, or (searched) those that leave room for
        at least one smallest-model worker feeding them."""
        if self.output_model is not None:
            return [self.output_model]
        small = self.node_units(self.models[0], 0)
        ok = [m for m in self.models if self.node_units(m, 1) + small <= self.budget.units + 1e-9]
        return ok or [m for m in self.models if self.node_units(m, 0) <= self.budget.units + 1e-9]

    def describe(self) -> dict[str, Any]:
        return {"pool": self.pool.name, "models": self.models, "budget_units": self.budget.units,
                "node_budget": self.node_budget, "output_model": self.output_model,
                "unit_costs": self.unit_costs(), "unit_costs_given": self._given_costs is not None,
                "max_nodes": self.max_nodes,
                "temperature": self.temperature, "edge_temperature": self.edge_temperature}


def _without_empty_votes(graph: Graph) -> tuple[Graph, list[str]]:
    """The graph pruned, minus worker votes left with no predecessor (repeatedly), and the ids gone."""
    g, removed = graph.pruned()
    removed = list(removed)
    while True:
        empty = [n.id for n in g.nodes if n.model is None and n.id != g.output and not g.preds(n.id)]
        if not empty:
            return g, removed
        g = Graph([n for n in g.nodes if n.id not in empty], [(u, v) for u, v in g.edges if u not in empty], g.output)
        removed.extend(empty)
        g, dead = g.pruned()
        removed.extend(dead)


def counts_of(graph: Graph) -> dict[str, int]:
    """Worker model counts of a graph (the output node and nodes without a model excluded)."""
    return dict(Counter(n.model for n in graph.nodes if n.id != graph.output and n.model is not None))


__all__ = ["DEFAULT_EDGE_P", "OUTPUT_ID", "SearchSpace", "counts_of", "worker_id"]
