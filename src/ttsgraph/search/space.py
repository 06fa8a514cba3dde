"""The search space: which graphs a search may propose, and the probabilistic graph it samples from.

Every optimizer (Agent-REINFORCE and every baseline) draws from the same `SearchSpace`, so they all
compete for the same budget with the same rules:

- the budget is in normalized units (SPEC §2.3); a budget given in units maps to the node budget b
  of the largest reference graph that fits, which is what the model-count mixes are built from;
- each model has an integer unit cost (its d=0 cost in units, rounded, at least 1), and the mixes
  (`combos`) are the worker counts that fill b with the smallest leftover, as the paper's code does;
- the output node is the pool's `output` model (the paper fixes it) unless `output_model=None`,
  in which case its model is searched like the others;
- a graph over budget is repaired by deleting its smallest-model node until it fits, never
  scored as a failure.

`ProbGraph` is the GPTSwarm-style distribution (SPEC §3.1–3.2): Bernoulli edge probabilities θ over
ordered worker pairs and worker→output, role probabilities π and model probabilities ψ per slot.
Sampled graphs are pruned to the nodes that reach the output, get valid roles, and are repaired to
the budget, so whatever it returns validates and fits.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Mapping
from typing import Any

import numpy as np

from ttsgraph.cost import Budget, TaskLengths, planned_node_flops, planned_units, reference_bound_units, unit_flops
from ttsgraph.errors import BudgetError, GraphError
from ttsgraph.graph import Graph, Node
from ttsgraph.models import ModelPool

OUTPUT_ID = "out"
MAX_NODE_BUDGET = 256
_POOL_OUTPUT: Any = object()  # sentinel: "the pool's output model" (None means "searched")
_EPS = 1e-6


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


def _logit(p: float) -> float:
    p = min(max(p, _EPS), 1 - _EPS)
    return math.log(p / (1 - p))


def _softmax(row: np.ndarray) -> np.ndarray:
    z = np.exp(row - row.max())
    return z / z.sum()


def worker_id(k: int) -> str:
    """Slot k (0-based) is node `n{k+1}`; the output is always `out`."""
    return f"n{k + 1}"


class SearchSpace:
    """The pool, the task lengths, the budget and the output node's model.

    `temperature` is the sampling temperature of worker LLM calls (the paper's preset: 0.1);
    `edge_temperature` is the GPTSwarm sampler's: an edge with logit ℓ is drawn with probability
    sigmoid(ℓ − 2/edge_temperature), so fresh graphs start sparse (0.119 at temperature 1).
    `max_nodes` caps the worker nodes of any mix (default: no cap beyond the budget).
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

    def unit_costs(self) -> dict[str, int]:
        """Integer node costs for model mixes: each model's d=0 cost in units, rounded, at least 1."""
        return {m: max(1, int(round(self.node_units(m, 0)))) for m in self.models}

    def combos(self) -> list[dict[str, int]]:
        """Worker model counts that fill the node budget with the smallest leftover (SPEC §2.3).

        Counts include every pool model (zeros too), keys in pool size order; the list is ordered
        from the mixes with the largest models to those with the most small ones.
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
        return [{m: n for m, n in sorted(zip(order, t), key=lambda x: self.models.index(x[0]))}
                for t, s in zip(found, spent) if s == best]

    # ----- graphs --------------------------------------------------------------------------
    def check(self, graph: Graph) -> None:
        """Raise GraphError/BudgetError unless the graph is a member of this space."""
        graph.validate(models=set(self.pool.models))
        if self.output_model is not None and graph.node(graph.output).model != self.output_model:
            raise GraphError(f"output node {graph.output!r} must use {self.output_model}, not "
                             f"{graph.node(graph.output).model}", node=graph.output)
        if not self.fits(graph):
            raise BudgetError(f"graph costs {self.units(graph):.2f} units, over the budget of {self.budget.units:.2f}")

    def repair(self, graph: Graph) -> tuple[Graph, list[str]]:
        """Delete the smallest-model worker node (ties: the last listed) until the graph fits.

        Dead nodes (no path to the output) are dropped too and reported as removed; fusers left
        without an assistant predecessor become assistants, so the result validates.
        """
        g, removed = graph.pruned()
        removed = list(removed)
        rank = {m: k for k, m in enumerate(self.models)}
        g = fix_roles(g)
        while not self.fits(g):
            workers = [n for n in g.nodes if n.id != g.output]
            if not workers:
                raise BudgetError(f"the output node alone ({g.node(g.output).model}) costs "
                                  f"{self.units(g):.2f} units, over the budget of {self.budget.units:.2f}")
            victim = max(enumerate(workers), key=lambda kv: (-rank.get(kv[1].model, -1), kv[0]))[1]
            g = Graph([n for n in g.nodes if n.id != victim.id],
                      [(u, v) for u, v in g.edges if victim.id not in (u, v)], g.output)
            removed.append(victim.id)
            g, dead = g.pruned()
            removed.extend(dead)
            g = fix_roles(g)
        return g, removed

    def random_graph(self, counts: Mapping[str, int], rng: np.random.Generator, edge_p: float = 0.119,
                     output_model: str | None = None) -> Graph:
        """A random graph with exactly these worker model counts (before any budget repair).

        Models are placed on `n1..nk` at random; edges follow a random topological order, each
        kept with probability `edge_p`, and each worker reaches the output with probability
        `edge_p`. A dangling worker is then connected to a random later node that reaches the
        output, so every worker is used. Roles follow the sampler's rule (`assign_roles`).
        The result is repaired to the budget.
        """
        models = [m for m in self.models for _ in range(int(counts.get(m, 0)))]
        unknown = set(counts) - set(self.models)
        if unknown:
            raise GraphError(f"unknown model(s) in counts: {', '.join(sorted(unknown))}")
        if not models:
            raise BudgetError("a model mix needs at least one worker node")
        rng.shuffle(models)
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
        graph = assign_roles(Graph(nodes, edges, OUTPUT_ID), None, rng)[0]
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
                "unit_costs": self.unit_costs(), "max_nodes": self.max_nodes,
                "temperature": self.temperature, "edge_temperature": self.edge_temperature}


def fix_roles(graph: Graph) -> Graph:
    """Make roles valid with the fewest changes: a fuser without an assistant predecessor (or fed
    by a fuser), and the output node, become assistants. Visits nodes in topological order."""
    roles = {n.id: n.role for n in graph.nodes}
    changed = False
    for nid in graph.topological_order():
        if roles[nid] != "fuser":
            continue
        preds = graph.preds(nid)
        if (nid == graph.output or not preds or any(roles[p] == "fuser" for p in preds)
                or not any(roles[p] == "assistant" for p in preds)):
            roles[nid] = "assistant"
            changed = True
    if not changed:
        return graph
    return Graph([Node(n.id, n.model, roles[n.id]) for n in graph.nodes], list(graph.edges), graph.output)  # type: ignore[arg-type]


def _fuser_prob(logits: np.ndarray | None, row: int) -> float:
    base = 0.5 if logits is None else float(_softmax(logits[row])[1])
    return min(1.0, base + 0.5)


def _role_rule(graph: Graph, nid: str, roles: dict[str, str]) -> str | None:
    """The role a node is forced to take (None: it is drawn with the +0.5 fuser prior)."""
    preds = graph.preds(nid)
    if nid == graph.output or not preds or any(roles[p] == "fuser" for p in preds):
        return "assistant"
    return None


def assign_roles(graph: Graph, role_logits: np.ndarray | None, rng: np.random.Generator,
                 slot_of: Mapping[str, int] | None = None) -> tuple[Graph, float]:
    """GPTSwarm's role rule in topological order (SPEC §3.2): the output and source nodes are
    assistants, a node fed by a fuser is an assistant, a node fed only by assistants becomes a fuser
    with probability min(1, π_v[fuser] + 0.5). Every outcome satisfies the role rules, so no
    resampling is needed. Returns the graph and the log-probability of the drawn roles."""
    roles: dict[str, str] = {}
    logp = 0.0
    for nid in graph.topological_order():
        forced = _role_rule(graph, nid, roles)
        if forced is not None:
            roles[nid] = forced
            continue
        row = slot_of[nid] if slot_of is not None and nid in slot_of else 0
        p = _fuser_prob(role_logits if slot_of is not None else None, row)
        fuse = rng.random() < p
        roles[nid] = "fuser" if fuse else "assistant"
        logp += math.log(max(p if fuse else 1 - p, 1e-300))
    nodes = [Node(n.id, n.model, roles[n.id]) for n in graph.nodes]  # type: ignore[arg-type]
    return Graph(nodes, list(graph.edges), graph.output), logp


class ProbGraph:
    """The probabilistic graph over k worker slots `n1..nk` and the output `out`.

    - θ: one logit per potential edge (every ordered worker pair, and worker→out), drawn with
      probability sigmoid(logit − shift); `shift` defaults to 2/edge_temperature (GPTSwarm's sparse
      start). `edge_table()` reports, and `set_edge_table()` takes, the effective probabilities.
    - π: per slot, logits over (assistant, fuser); the +0.5 fuser prior of §3.2 applies on top.
    - ψ: per slot, logits over the pool models (or the output's too when it is searched).

    With `counts` the slot models are fixed (ψ is one-hot: "the mix is decided, place it");
    with `slots` each slot draws its model from ψ within the remaining integer node budget.
    """

    def __init__(self, space: SearchSpace, counts: Mapping[str, int] | None = None, slots: int | None = None,
                 shift: float | None = None) -> None:
        if (counts is None) == (slots is None):
            raise ValueError("give exactly one of counts or slots")
        self.space = space
        self.models = list(space.models)
        self.fixed: list[str] | None = None
        if counts is not None:
            unknown = set(counts) - set(self.models)
            if unknown:
                raise GraphError(f"unknown model(s) in counts: {', '.join(sorted(unknown))}")
            # largest models first: they take the low slots, which the fixed edge order puts upstream least
            self.fixed = [m for m in self.models[::-1] for _ in range(int(counts.get(m, 0)))]
            slots = len(self.fixed)
        assert slots is not None
        if slots < 1:
            raise BudgetError("a probabilistic graph needs at least one worker slot")
        self.k = int(slots)
        self.shift = 2.0 / space.edge_temperature if shift is None else float(shift)
        self.ids = [worker_id(i) for i in range(self.k)]
        self.potential: list[tuple[str, str]] = [(u, v) for u in self.ids for v in self.ids if u != v]
        self.potential += [(u, OUTPUT_ID) for u in self.ids]
        self.edge_logits = np.zeros(len(self.potential))
        self.role_logits = np.zeros((self.k, 2))
        self.model_logits = np.zeros((self.k + 1, len(self.models)))  # last row: the output slot
        self._index = {e: i for i, e in enumerate(self.potential)}
        self.slot_of = {nid: i for i, nid in enumerate(self.ids)}
        self.last_draw: Graph | None = None

    # ----- θ -------------------------------------------------------------------------------
    def edge_prob(self, u: str, v: str) -> float:
        return _sigmoid(float(self.edge_logits[self._index[(u, v)]]) - self.shift)

    def edge_table(self) -> list[dict[str, Any]]:
        """One row per potential edge: index, source, target, effective probability."""
        return [{"idx": i, "src": u, "dst": v, "prob": round(self.edge_prob(u, v), 6)}
                for i, (u, v) in enumerate(self.potential)]

    def set_edge_table(self, rows: list[dict[str, Any]] | Mapping[tuple[str, str], float]) -> None:
        """Set effective edge probabilities, from `edge_table()`-style rows or {(src, dst): p}.
        Unknown edges raise GraphError naming the edge; edges not mentioned keep their value."""
        items = rows.items() if isinstance(rows, Mapping) else (((r["src"], r["dst"]), r["prob"]) for r in rows)
        for (u, v), p in items:
            key = (str(u), str(v))
            if key not in self._index:
                raise GraphError(f"edge {u} -> {v} is not a potential edge of this graph", edge=key)
            p = float(p)
            if not 0.0 <= p <= 1.0 or math.isnan(p):
                raise GraphError(f"edge {u} -> {v}: probability {p} is not in [0, 1]", edge=key)
            self.edge_logits[self._index[key]] = _logit(p) + self.shift

    # ----- sampling ------------------------------------------------------------------------
    def _output_probs(self) -> np.ndarray:
        """ψ of the output slot restricted to `space.output_candidates()`."""
        allowed = np.array([m in self.space.output_candidates() for m in self.models], dtype=float)
        probs = _softmax(self.model_logits[self.k]) * allowed
        return probs / probs.sum()

    def _model_for(self, slot: int, rng: np.random.Generator, left: int, costs: dict[str, int]) -> tuple[str | None, float]:
        probs = _softmax(self.model_logits[slot])
        allowed = np.array([costs[m] <= left for m in self.models], dtype=float)
        masked = probs * allowed
        if masked.sum() <= 0:
            return None, 0.0
        masked /= masked.sum()
        j = int(rng.choice(len(self.models), p=masked))
        return self.models[j], math.log(float(masked[j]))

    def sample(self, rng: np.random.Generator, max_tries: int = 2000) -> tuple[Graph, float]:
        """Draw a graph: models, then edges (cycle-free, resampled until the output has a
        predecessor), roles on the nodes that reach the output; then prune and repair to the budget.

        Returns the pruned, repaired graph and the log-probability of the full draw, which is kept
        in `last_draw` (dead nodes included) for REINFORCE's `score_function`. When nothing was
        pruned or repaired, that equals `log_prob(graph)`."""
        costs = self.space.unit_costs()
        models: dict[str, str] = {}
        if self.fixed is not None:
            models = dict(zip(self.ids, self.fixed))
        else:
            left = self.space.node_budget
            for slot in rng.permutation(self.k):
                m, _ = self._model_for(int(slot), rng, left, costs)
                if m is None:
                    break
                models[self.ids[int(slot)]] = m
                left -= costs[m]
        if self.space.output_model is not None:
            out_model = self.space.output_model
        else:
            probs = self._output_probs()
            out_model = self.models[int(rng.choice(len(self.models), p=probs))]
        present = [i for i in self.ids if i in models]
        edges: list[tuple[str, str]] = []
        for _ in range(max_tries):
            edges = self._sample_edges(present, rng)
            if any(v == OUTPUT_ID for _, v in edges):
                break
        else:  # the distribution almost never reaches the output: connect the likeliest worker
            best = max(present, key=lambda u: self.edge_prob(u, OUTPUT_ID))
            edges.append((best, OUTPUT_ID))
        nodes = [Node(i, models[i]) for i in present] + [Node(OUTPUT_ID, out_model)]
        full = Graph(nodes, edges, OUTPUT_ID)
        useful, _ = full.pruned()
        useful, _ = assign_roles(useful, self.role_logits, rng, self.slot_of)
        roles = {n.id: n.role for n in useful.nodes}
        self.last_draw = Graph([Node(n.id, n.model, roles.get(n.id, "assistant")) for n in full.nodes],  # type: ignore[arg-type]
                               edges, OUTPUT_ID)
        graph, _ = self.space.repair(useful)
        return graph, self.log_prob(self.last_draw)

    def _sample_edges(self, present: list[str], rng: np.random.Generator) -> list[tuple[str, str]]:
        keep = set(present) | {OUTPUT_ID}
        edges: list[tuple[str, str]] = []
        reach: dict[str, set[str]] = {n: {n} for n in keep}  # descendants, for cycle checks
        for u, v in self.potential:
            if u not in keep or v not in keep or u in reach[v]:
                continue
            if rng.random() < self.edge_prob(u, v):
                edges.append((u, v))
                for n in keep:
                    if u in reach[n]:
                        reach[n] |= reach[v]
        return edges

    # ----- log-probability -----------------------------------------------------------------
    def log_prob(self, graph: Graph) -> float:
        """log p(G): the edge walk replayed on G's nodes (edges that would close a cycle are
        skipped, as when sampling), the role draws that were not forced (on nodes that reach the
        output), and each slot's model under ψ (unconditioned on the remaining budget). G is a
        draw over the slots it lists, dead nodes included (see `last_draw`); nodes are `n1..nk`."""
        return float(sum(v for v in self._log_terms(graph).values()))

    def _log_terms(self, graph: Graph) -> dict[str, float]:
        present = [n.id for n in graph.nodes if n.id != graph.output]
        for nid in present:
            if nid not in self.slot_of:
                raise GraphError(f"node {nid!r} is not a slot of this probabilistic graph ({', '.join(self.ids)})",
                                 node=nid)
        keep = set(present) | {OUTPUT_ID}
        have = {(u, "out" if v == graph.output else v) for u, v in graph.edges}
        reach: dict[str, set[str]] = {n: {n} for n in keep}
        edge_lp = 0.0
        for u, v in self.potential:
            if u not in keep or v not in keep or u in reach[v]:
                continue
            p = self.edge_prob(u, v)
            if (u, v) in have:
                edge_lp += math.log(max(p, 1e-300))
                for n in keep:
                    if u in reach[n]:
                        reach[n] |= reach[v]
            else:
                edge_lp += math.log(max(1 - p, 1e-300))
        role_lp = 0.0
        roles = {n.id: n.role for n in graph.nodes}
        useful = graph.pruned()[0]
        for nid in useful.topological_order():
            if _role_rule(useful, nid, roles) is not None or nid not in self.slot_of:
                continue
            p = _fuser_prob(self.role_logits, self.slot_of[nid])
            role_lp += math.log(max(p if roles[nid] == "fuser" else 1 - p, 1e-300))
        model_lp = 0.0
        if self.fixed is None:
            for nid in present:
                node = graph.node(nid)
                model_lp += math.log(float(_softmax(self.model_logits[self.slot_of[nid]])[self.models.index(node.model)]))
        if self.space.output_model is None:
            out = graph.node(graph.output).model
            model_lp += math.log(max(float(self._output_probs()[self.models.index(out)]), 1e-300))
        return {"edges": edge_lp, "roles": role_lp, "models": model_lp}

    def score_function(self, graph: Graph) -> dict[str, np.ndarray]:
        """∇ log p(G) with respect to (edge_logits, role_logits, model_logits), for REINFORCE.

        Edge terms: (x − p) for each edge the walk considered; roles: (onehot − softmax) where the
        role was drawn freely (the +0.5 prior's clamp makes it 0 when p = 1); models: onehot − ψ.
        """
        g_edges = np.zeros_like(self.edge_logits)
        g_roles = np.zeros_like(self.role_logits)
        g_models = np.zeros_like(self.model_logits)
        present = [n.id for n in graph.nodes if n.id != graph.output]
        keep = set(present) | {OUTPUT_ID}
        have = {(u, "out" if v == graph.output else v) for u, v in graph.edges}
        reach: dict[str, set[str]] = {n: {n} for n in keep}
        for i, (u, v) in enumerate(self.potential):
            if u not in keep or v not in keep or u in reach[v]:
                continue
            p = self.edge_prob(u, v)
            x = 1.0 if (u, v) in have else 0.0
            g_edges[i] = x - p
            if x:
                for n in keep:
                    if u in reach[n]:
                        reach[n] |= reach[v]
        roles = {n.id: n.role for n in graph.nodes}
        useful = graph.pruned()[0]
        for nid in useful.topological_order():
            if _role_rule(useful, nid, roles) is not None or nid not in self.slot_of:
                continue
            s = self.slot_of[nid]
            sm = _softmax(self.role_logits[s])
            p = min(1.0, sm[1] + 0.5)
            if p >= 1.0:
                continue
            # d/dlogits of log p(role) where p_fuser = sm[1] + 0.5: dsm1 = sm1 * (onehot1 - sm)
            dp = sm[1] * (np.array([0.0, 1.0]) - sm)
            g_roles[s] += dp / p if roles[nid] == "fuser" else -dp / (1 - p)
        if self.fixed is None:
            for nid in present:
                s = self.slot_of[nid]
                onehot = np.zeros(len(self.models))
                onehot[self.models.index(graph.node(nid).model)] = 1.0
                g_models[s] += onehot - _softmax(self.model_logits[s])
        if self.space.output_model is None:
            onehot = np.zeros(len(self.models))
            onehot[self.models.index(graph.node(graph.output).model)] = 1.0
            allowed = self._output_probs() > 0
            g_models[self.k] += (onehot - self._output_probs()) * allowed
        return {"edge_logits": g_edges, "role_logits": g_roles, "model_logits": g_models}

    # ----- state ---------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"k": self.k, "fixed": self.fixed, "shift": self.shift, "models": self.models,
                "edge_logits": self.edge_logits.tolist(), "role_logits": self.role_logits.tolist(),
                "model_logits": self.model_logits.tolist()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["k"] != self.k or state.get("models", self.models) != self.models:
            raise GraphError(f"probabilistic graph state has {state['k']} slots over {state.get('models')}, "
                             f"this one {self.k} over {self.models}")
        self.fixed = state.get("fixed")
        self.shift = float(state.get("shift", self.shift))
        self.edge_logits = np.array(state["edge_logits"], dtype=float)
        self.role_logits = np.array(state["role_logits"], dtype=float)
        self.model_logits = np.array(state["model_logits"], dtype=float)


def counts_of(graph: Graph) -> dict[str, int]:
    """Worker model counts of a graph (the output node excluded)."""
    return dict(Counter(n.model for n in graph.nodes if n.id != graph.output))


__all__ = ["SearchSpace", "ProbGraph", "OUTPUT_ID", "worker_id", "fix_roles", "assign_roles", "counts_of"]
