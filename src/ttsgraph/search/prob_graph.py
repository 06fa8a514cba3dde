"""The GPTSwarm-style probabilistic graph (SPEC §3.1–3.2) that REINFORCE trains and agents rewrite.

Over k worker slots `n1..nk` and the output `out` it holds three parameter arrays:

- θ, `edge_logits`: one logit per potential edge (every ordered worker pair, and worker→out);
- π, `role_logits`: per slot, logits over (assistant, fuser);
- ψ, `model_logits`: per slot, logits over the pool models, plus a last row for the output's model
  when it is searched;
- ν, `vote_logit`: the output's role: it becomes a vote (majority over its predecessors, no model,
  0 FLOPs) with `vote_prob()` = sigmoid(ν − VOTE_SHIFT), 0.2 at ν = 0; a vote output draws no model.

The arrays are private, and each probability has one definition that the sampler, the
log-probability, the gradient and the tables shown to (and written by) an agent all use:

- an edge is kept with `edge_prob(u, v)` = sigmoid(logit − shift), where `shift` (default
  2/edge_temperature) is GPTSwarm's sparse start (0.119 at logit 0);
- a free node becomes a fuser with `fuser_prob(node)` = min(1, softmax(π)[fuser] + 0.5);
- a slot draws its model from `model_probs()` (masked by what the budget has left).

So `edge_table()` / `fuser_table()` report exactly what the sampler uses, and `set_edge_table()` /
`set_fuser_table()` store a written p so that it reads back as p (clipped to the reachable range).
Training goes through `params()` / `set_params()`, which copy and check shapes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from ttsgraph.errors import BudgetError, GraphError
from ttsgraph.graph import Graph, Node
from ttsgraph.search.numeric import logit, sigmoid, softmax
from ttsgraph.search.role_rules import (FUSER_PRIOR, as_vote_output, assign_roles, forced_role, fuser_probability,
                                       with_roles)
from ttsgraph.search.space import OUTPUT_ID, worker_id

if TYPE_CHECKING:
    from ttsgraph.search.space import SearchSpace

PROB_EPS = 1e-6
"""Written probabilities are clipped to [eps, 1 − eps] (fuser ones to [0.5 + eps, 1 − eps]): a
certain 0 or 1 would be an infinite logit, which no gradient step could move again."""

PARAM_NAMES = ("edge_logits", "role_logits", "model_logits", "vote_logit")
VOTE_SHIFT = -logit(0.2)
"""The output starts as a vote with probability 0.2: self-consistency is a candidate from the start."""


def _clip(value: Any, low: float, high: float, what: str, key: Any) -> float:
    """A written probability, checked to be in [0, 1] and clipped to [low, high]."""
    try:
        p = float(value)
    except (TypeError, ValueError):
        p = math.nan
    if math.isnan(p) or not 0.0 <= p <= 1.0:
        where = {"edge": key} if isinstance(key, tuple) else {"node": str(key)}
        raise GraphError(f"{what}: probability {value!r} is not in [0, 1]", **where)
    return min(max(p, low), high)


class ProbGraph:
    """The distribution over graphs on k worker slots (see the module docstring).

    With `counts` the slot models are fixed (`fixed`, largest models first: "the mix is decided,
    place it"); with `slots` each slot draws its model from ψ within the remaining node budget.
    """

    def __init__(self, space: SearchSpace, counts: Mapping[str, int] | None = None, slots: int | None = None,
                 shift: float | None = None, votes: bool = True) -> None:
        if (counts is None) == (slots is None):
            raise ValueError("give exactly one of counts or slots")
        self.space = space
        self.votes = votes  # False: the output is never a vote (an agent's rules fix its role)
        self.models = list(space.models)
        fixed: list[str] | None = None
        if counts is not None:
            unknown = set(counts) - set(self.models)
            if unknown:
                raise GraphError(f"unknown model(s) in counts: {', '.join(sorted(unknown))}")
            # largest models first: they take the low slots, which the fixed edge order puts upstream least
            fixed = [m for m in self.models[::-1] for _ in range(int(counts.get(m, 0)))]
            slots = len(fixed)
        assert slots is not None
        if slots < 1:
            raise BudgetError("a probabilistic graph needs at least one worker slot")
        self.k = int(slots)
        self._shift = 2.0 / space.edge_temperature if shift is None else float(shift)
        self.ids = [worker_id(i) for i in range(self.k)]
        self.potential: list[tuple[str, str]] = [(u, v) for u in self.ids for v in self.ids if u != v]
        self.potential += [(u, OUTPUT_ID) for u in self.ids]
        self._index = {e: i for i, e in enumerate(self.potential)}
        self.slot_of = {nid: i for i, nid in enumerate(self.ids)}
        self._params = {"edge_logits": np.zeros(len(self.potential)), "role_logits": np.zeros((self.k, 2)),
                        "model_logits": np.zeros((self.k + 1, len(self.models))),  # last ψ row: the output
                        "vote_logit": np.zeros(1)}
        self._fixed: list[str] | None = None
        self.fixed = fixed
        self.last_draw: Graph | None = None

    # ----- the parameters ------------------------------------------------------------------
    @property
    def shift(self) -> float:
        """The sparsity prior subtracted from every edge logit."""
        return self._shift

    @property
    def fixed(self) -> list[str] | None:
        """The model of each slot when the mix is placed (None: ψ draws them)."""
        return None if self._fixed is None else list(self._fixed)

    @fixed.setter
    def fixed(self, models: list[str] | None) -> None:
        if models is not None:
            if len(models) != self.k or not set(models) <= set(self.models):
                raise GraphError(f"fixed slot models must be {self.k} of {', '.join(self.models)}, got {models}")
            models = list(models)
        self._fixed = models

    def params(self) -> dict[str, np.ndarray]:
        """Copies of the logit arrays, keyed by `PARAM_NAMES`."""
        return {k: v.copy() for k, v in self._params.items()}

    def set_params(self, params: Mapping[str, Any]) -> None:
        """Replace some or all logit arrays; each must keep its shape and be finite. Nothing is
        written unless every array given is valid."""
        checked: dict[str, np.ndarray] = {}
        for name, value in params.items():
            if name not in self._params:
                raise GraphError(f"unknown probabilistic-graph parameter {name!r} (valid: {', '.join(PARAM_NAMES)})")
            arr = np.array(value, dtype=float)
            if arr.shape != self._params[name].shape:
                raise GraphError(f"{name}: shape {arr.shape}, expected {self._params[name].shape}")
            if not np.all(np.isfinite(arr)):
                raise GraphError(f"{name}: values must be finite")
            checked[name] = arr
        self._params.update(checked)

    # ----- θ: edges ------------------------------------------------------------------------
    def _edge_p(self, i: int) -> float:
        return sigmoid(float(self._params["edge_logits"][i]) - self._shift)

    def edge_prob(self, u: str, v: str) -> float:
        """The probability the sampler keeps edge u → v (when it would close no cycle)."""
        return self._edge_p(self._index[(u, v)])

    def edge_table(self) -> list[dict[str, Any]]:
        """One row per potential edge: `idx`, `src`, `dst`, `prob` (= `edge_prob`)."""
        return [{"idx": i, "src": u, "dst": v, "prob": self._edge_p(i)} for i, (u, v) in enumerate(self.potential)]

    def set_edge_table(self, rows: list[dict[str, Any]] | Mapping[tuple[str, str], float],
                       eps: float = PROB_EPS) -> None:
        """Set edge probabilities, from `edge_table()`-style rows or {(src, dst): p}: afterwards
        `edge_prob` is p clipped to [eps, 1 − eps]. An unknown edge or a p outside [0, 1] raises
        GraphError naming it, and then nothing is written; edges not mentioned keep their value."""
        items = rows.items() if isinstance(rows, Mapping) else (((r["src"], r["dst"]), r["prob"]) for r in rows)
        new: dict[int, float] = {}
        for (u, v), p in items:
            key = (str(u), str(v))
            if key not in self._index:
                raise GraphError(f"edge {u} -> {v} is not a potential edge of this graph", edge=key)
            new[self._index[key]] = logit(_clip(p, eps, 1 - eps, f"edge {u} -> {v}", key)) + self._shift
        for i, value in new.items():
            self._params["edge_logits"][i] = value

    # ----- π: roles ------------------------------------------------------------------------
    def fuser_prob(self, node: str) -> float:
        """The probability that slot `node`, when free (fed by assistants only), becomes a fuser."""
        return fuser_probability(float(softmax(self._params["role_logits"][self.slot_of[node]])[1]))

    def fuser_table(self) -> dict[str, float]:
        """{slot id: `fuser_prob`}; at least 0.5 by GPTSwarm's prior."""
        return {nid: self.fuser_prob(nid) for nid in self.ids}

    def set_fuser_table(self, table: Mapping[str, float], eps: float = PROB_EPS) -> None:
        """Set fuser probabilities {slot id: p}: afterwards `fuser_prob` is p clipped to
        [0.5 + eps, 1 − eps] (the prior makes anything below 0.5 unreachable). An unknown slot or a
        p outside [0, 1] raises GraphError, and then nothing is written."""
        new: dict[int, float] = {}
        for nid, p in table.items():
            if nid not in self.slot_of:
                raise GraphError(f"{nid!r} is not a worker slot ({', '.join(self.ids)})", node=str(nid))
            q = _clip(p, FUSER_PRIOR + eps, 1 - eps, f"fuser {nid}", nid)
            new[self.slot_of[nid]] = logit(q - FUSER_PRIOR)  # softmax([0, x])[1] = sigmoid(x)
        for s, x in new.items():
            self._params["role_logits"][s] = [0.0, x]

    # ----- ψ: models -----------------------------------------------------------------------
    def model_probs(self) -> np.ndarray:
        """ψ as probabilities, (k + 1) × models (last row: the output), before any budget mask."""
        return softmax(self._params["model_logits"])

    def vote_prob(self) -> float:
        """The probability that the output node is a vote (0 when `votes` is off)."""
        if not self.votes:
            return 0.0
        return float(sigmoid(float(self._params["vote_logit"][0]) - VOTE_SHIFT))

    def _output_probs(self) -> np.ndarray:
        """ψ of the output slot restricted to `space.output_candidates()`."""
        allowed = np.array([m in self.space.output_candidates() for m in self.models], dtype=float)
        probs = self.model_probs()[self.k] * allowed
        return probs / probs.sum()

    def _model_for(self, slot: int, rng: np.random.Generator, left: int, costs: dict[str, int]) -> str | None:
        allowed = np.array([costs[m] <= left for m in self.models], dtype=float)
        masked = self.model_probs()[slot] * allowed
        if masked.sum() <= 0:
            return None
        return self.models[int(rng.choice(len(self.models), p=masked / masked.sum()))]

    # ----- sampling ------------------------------------------------------------------------
    def sample(self, rng: np.random.Generator, max_tries: int = 2000) -> tuple[Graph, float]:
        """Draw a graph: models, then edges (cycle-free, resampled until the output has a
        predecessor), roles on the nodes that reach the output; then prune and repair to the budget.

        Returns the pruned, repaired graph and the log-probability of the full draw, which is kept
        in `last_draw` (dead nodes included) for REINFORCE's `score_function`. When nothing was
        pruned or repaired, that equals `log_prob(graph)`."""
        costs = self.space.unit_costs()
        models: dict[str, str] = {}
        if self._fixed is not None:
            models = dict(zip(self.ids, self._fixed))
        else:
            left = self.space.node_budget
            for slot in rng.permutation(self.k):
                m = self._model_for(int(slot), rng, left, costs)
                if m is None:
                    break
                models[self.ids[int(slot)]] = m
                left -= costs[m]
        if self.space.output_model is not None:
            out_model = self.space.output_model
        else:
            out_model = self.models[int(rng.choice(len(self.models), p=self._output_probs()))]
        present = [i for i in self.ids if i in models]
        edges: list[tuple[str, str]] = []
        for _ in range(max_tries):
            walk = self._walk(set(present) | {OUTPUT_ID}, lambda u, v, p: bool(rng.random() < p))
            edges = [self.potential[i] for i, _, taken in walk if taken]
            if any(v == OUTPUT_ID for _, v in edges):
                break
        else:  # the distribution almost never reaches the output: connect the likeliest worker
            edges.append((max(present, key=lambda u: self.edge_prob(u, OUTPUT_ID)), OUTPUT_ID))
        full = Graph([Node(i, models[i]) for i in present] + [Node(OUTPUT_ID, out_model)], edges, OUTPUT_ID)
        useful, _ = assign_roles(full.pruned()[0], rng, self.fuser_prob)
        if self.votes and rng.random() < self.vote_prob():
            full, useful = as_vote_output(full), as_vote_output(useful)
        self.last_draw = with_roles(full, {n.id: n.role for n in useful.nodes})
        graph, _ = self.space.repair(useful)
        return graph, self.log_prob(self.last_draw)

    def _walk(self, nodes: set[str], taken: Callable[[str, str, float], bool]) -> list[tuple[int, float, bool]]:
        """The edge walk over `nodes` in `potential` order: an edge that would close a cycle with
        those taken so far is skipped; every other one is taken or not by `taken(u, v, p)`.
        Returns (index, p, taken) per edge considered."""
        reach: dict[str, set[str]] = {n: {n} for n in nodes}  # descendants, for cycle checks
        out: list[tuple[int, float, bool]] = []
        for i, (u, v) in enumerate(self.potential):
            if u not in nodes or v not in nodes or u in reach[v]:
                continue
            p = self._edge_p(i)
            x = taken(u, v, p)
            out.append((i, p, x))
            if x:
                for n in nodes:
                    if u in reach[n]:
                        reach[n] |= reach[v]
        return out

    def _replay(self, graph: Graph) -> tuple[list[tuple[int, float, bool]], list[tuple[str, bool]], list[str]]:
        """How `graph` was drawn: the edge walk on its nodes, the free role draws (node, fused) on
        the nodes that reach the output, and the worker ids. Nodes must be slots `n1..nk`."""
        present = [n.id for n in graph.nodes if n.id != graph.output]
        for nid in present:
            if nid not in self.slot_of:
                raise GraphError(f"node {nid!r} is not a slot of this probabilistic graph ({', '.join(self.ids)})",
                                 node=nid)
        have = {(u, OUTPUT_ID if v == graph.output else v) for u, v in graph.edges}
        walk = self._walk(set(present) | {OUTPUT_ID}, lambda u, v, p: (u, v) in have)
        roles = {n.id: n.role for n in graph.nodes}
        useful = graph.pruned()[0]
        free = [(nid, roles[nid] == "fuser") for nid in useful.topological_order()
                if nid in self.slot_of and forced_role(useful, nid, roles) is None]
        return walk, free, present

    # ----- log-probability and its gradient --------------------------------------------------
    def log_prob(self, graph: Graph) -> float:
        """log p(G): the edge walk replayed on G's nodes (edges that would close a cycle are
        skipped, as when sampling), the role draws that were not forced (on nodes that reach the
        output), and each slot's model under ψ (unconditioned on the remaining budget). G is a
        draw over the slots it lists, dead nodes included (see `last_draw`); nodes are `n1..nk`."""
        walk, free, present = self._replay(graph)
        lp = sum(math.log(max(p if x else 1 - p, 1e-300)) for _, p, x in walk)
        for nid, fused in free:
            p = self.fuser_prob(nid)
            lp += math.log(max(p if fused else 1 - p, 1e-300))
        psi = self.model_probs()
        if self._fixed is None:
            lp += sum(math.log(float(psi[self.slot_of[nid], self.models.index(graph.node(nid).model)]))
                      for nid in present)
        out_model = graph.node(graph.output).model
        p_vote = self.vote_prob()
        lp += math.log(max(1 - p_vote if out_model is not None else p_vote, 1e-300))
        if self.space.output_model is None and out_model is not None:  # a vote's unused model is marginalized
            lp += math.log(max(float(self._output_probs()[self.models.index(out_model)]), 1e-300))
        return float(lp)

    def score_function(self, graph: Graph) -> dict[str, np.ndarray]:
        """∇ log p(G) with respect to the `params()` arrays, for REINFORCE.

        Edge terms: (x − p) for each edge the walk considered; roles: through p = softmax + 0.5
        where the role was drawn freely (0 where the prior's clamp makes p = 1); models: onehot − ψ.
        """
        grads = {k: np.zeros_like(v) for k, v in self._params.items()}
        walk, free, present = self._replay(graph)
        for i, p, x in walk:
            grads["edge_logits"][i] = (1.0 if x else 0.0) - p
        for nid, fused in free:
            s = self.slot_of[nid]
            sm = softmax(self._params["role_logits"][s])
            p = fuser_probability(float(sm[1]))
            if p >= 1.0:
                continue
            dp = sm[1] * (np.array([0.0, 1.0]) - sm)  # d softmax[1] / d logits
            grads["role_logits"][s] += dp / p if fused else -dp / (1 - p)
        psi = self.model_probs()
        eye = np.eye(len(self.models))
        if self._fixed is None:
            for nid in present:
                s = self.slot_of[nid]
                grads["model_logits"][s] += eye[self.models.index(graph.node(nid).model)] - psi[s]
        out_model = graph.node(graph.output).model
        if self.votes:
            grads["vote_logit"][0] = (1.0 if out_model is None else 0.0) - self.vote_prob()
        if self.space.output_model is None and out_model is not None:
            out = self._output_probs()
            grads["model_logits"][self.k] += (eye[self.models.index(out_model)] - out) * (out > 0)
        return grads

    # ----- state ---------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"k": self.k, "fixed": self.fixed, "shift": self._shift, "models": self.models,
                **{k: v.tolist() for k, v in self._params.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["k"] != self.k or state.get("models", self.models) != self.models:
            raise GraphError(f"probabilistic graph state has {state['k']} slots over {state.get('models')}, "
                             f"this one {self.k} over {self.models}")
        self.set_params({k: state[k] for k in PARAM_NAMES if k in state})  # states before votes lack ν
        self.fixed = state.get("fixed")
        self._shift = float(state.get("shift", self._shift))


__all__ = ["PARAM_NAMES", "PROB_EPS", "VOTE_SHIFT", "ProbGraph"]
