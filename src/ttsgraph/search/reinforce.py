"""GPTSwarm-style REINFORCE: learnable edge, role and model logits trained by policy gradient.

This is the numeric baseline Agent-REINFORCE replaces with an LLM (SPEC §3.2, §7 `OptimizedSwarm`).
The distribution is a `prob_graph.ProbGraph` over b worker slots, with free model logits:
one logit per potential edge, role logits and model logits per slot. Each ask samples a few
graphs (each scored on a few items, so one ask spends one batch); the loss −mean(log p(G)·U) is
minimized with Adam (lr 0.1). With no baseline by default (as the released code) or with a
moving average of the utility (`baseline="moving-average"`), which lowers the gradient's variance.

Plain numpy: ∇ log p(G) is closed-form (`ProbGraph.score_function`), so no autograd is needed.

The final ask proposes the *realized* graph (SPEC §7): the most likely models and edges, made
valid and within budget. It costs one batch like any other ask, so comparisons stay fair.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
from pydantic import Field, field_validator

from ttsgraph.errors import TtsGraphError
from ttsgraph.graph import Graph, Node
from ttsgraph.search.base import Evaluation, Optimizer, MixOptions, Proposal, register
from ttsgraph.search.numeric import logit, sigmoid
from ttsgraph.search.prob_graph import PARAM_NAMES, ProbGraph
from ttsgraph.search.role_rules import assign_roles
from ttsgraph.search.space import OUTPUT_ID, SearchSpace


def _flat(arrays: Mapping[str, np.ndarray]) -> np.ndarray:
    return np.concatenate([arrays[k].ravel() for k in PARAM_NAMES])


def flat_params(dist: ProbGraph) -> np.ndarray:
    """The distribution's parameters as one vector, in `PARAM_NAMES` order (what Adam steps)."""
    return _flat(dist.params())


def set_flat_params(dist: ProbGraph, vec: np.ndarray) -> None:
    """Write a `flat_params`-shaped vector back into the distribution."""
    shapes = {k: v.shape for k, v in dist.params().items()}
    new, k = {}, 0
    for name in PARAM_NAMES:
        size = int(np.prod(shapes[name]))
        new[name] = np.asarray(vec[k:k + size], float).reshape(shapes[name])
        k += size
    dist.set_params(new)


class Adam:
    """Adam on a flat parameter vector, with state that serializes to JSON."""

    def __init__(self, size: int, lr: float = 0.1, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
        self.lr, self.b1, self.b2, self.eps = lr, betas[0], betas[1], eps
        self.m = np.zeros(size)
        self.v = np.zeros(size)
        self.t = 0

    def step(self, params: np.ndarray, grad: np.ndarray) -> np.ndarray:
        """One descent step along `grad` (the loss gradient); returns the new parameters."""
        self.t += 1
        self.m = self.b1 * self.m + (1 - self.b1) * grad
        self.v = self.b2 * self.v + (1 - self.b2) * grad * grad
        m_hat = self.m / (1 - self.b1 ** self.t)
        v_hat = self.v / (1 - self.b2 ** self.t)
        return params - self.lr * m_hat / (np.sqrt(v_hat) + self.eps)

    def state_dict(self) -> dict[str, Any]:
        return {"m": self.m.tolist(), "v": self.v.tolist(), "t": self.t}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.m, self.v, self.t = np.asarray(state["m"], float), np.asarray(state["v"], float), int(state["t"])


def worker_slots(space: SearchSpace, budget_filling: bool = False) -> int:
    """GPTSwarm's N: as many worker slots as the largest mix has workers (b when the reference
    model is the cheapest); the sampler's dropped slots give the smaller graphs."""
    combos = space.combos(budget_filling)
    if not combos:
        raise TtsGraphError("the budget admits no model mix: raise the budget")
    return max(sum(c.values()) for c in combos)


def _reaches(edges: list[tuple[str, str]], u: str, target: str) -> bool:
    todo, seen = [u], set()
    while todo:
        x = todo.pop()
        if x == target:
            return True
        if x not in seen:
            seen.add(x)
            todo.extend(v for a, v in edges if a == x)
    return False


def realize(dist: ProbGraph, space: SearchSpace, rng: np.random.Generator, keep: float = 0.55,
            reconnect: float = 0.2, max_out_degree: int = 2) -> Graph:
    """SPEC §7's final graph from learnt probabilities: the most likely model per slot, greedily
    within the node budget (most confident slots first); edges likelier than `keep`, at most
    `max_out_degree` per node; a node that does not reach the output is reconnected through its
    likeliest edge at least as likely as `reconnect` to a node that does (else straight to the
    output); roles drawn by the sampler's rule; repaired to the budget.

    `keep` and `reconnect` are on the learnt scale, before the sampler's sparsity prior: an edge
    passes `keep` when its `edge_prob` exceeds sigmoid(logit(keep) − shift). With the prior's
    0.119 start no edge could pass 0.55 within a few Adam steps.
    """
    costs = space.unit_costs()
    keep_at, reconnect_at = (sigmoid(logit(t) - dist.shift) for t in (keep, reconnect))
    probs = {e: dist.edge_prob(*e) for e in dist.potential}
    mprob = dist.model_probs()
    models: dict[str, str] = {}
    left = space.node_budget
    for s in sorted(range(dist.k), key=lambda s: (-float(mprob[s].max()), s)):
        for j in np.argsort(-mprob[s], kind="stable"):
            m = dist.models[int(j)]
            if costs[m] <= left:
                models[dist.ids[s]] = m
                left -= costs[m]
                break
    out_model = space.output_model or dist.models[int(np.argmax(mprob[dist.k]))]
    present = [i for i in dist.ids if i in models]
    edges: list[tuple[str, str]] = []

    def add(u: str, v: str) -> bool:
        if (u, v) in edges or _reaches(edges, v, u):
            return False
        edges.append((u, v))
        return True

    out_degree: dict[str, int] = {}
    for (u, v), p in sorted(probs.items(), key=lambda kv: -kv[1]):
        if p <= keep_at or u not in models or (v != OUTPUT_ID and v not in models):
            continue
        if out_degree.get(u, 0) < max_out_degree and add(u, v):
            out_degree[u] = out_degree.get(u, 0) + 1
    for u in present:
        if _reaches(edges, u, OUTPUT_ID):
            continue
        targets = sorted(((probs[(u, v)], v) for v in present + [OUTPUT_ID] if v != u), key=lambda t: -t[0])
        if not any(p >= reconnect_at and _reaches(edges, v, OUTPUT_ID) and add(u, v) for p, v in targets):
            add(u, OUTPUT_ID)
    nodes = [Node(i, models[i]) for i in present] + [Node(OUTPUT_ID, out_model)]
    graph, _ = Graph(nodes, edges, OUTPUT_ID).pruned()
    graph, _ = assign_roles(graph, rng, dist.fuser_prob)
    return space.repair(graph)[0]


@register
class Reinforce(Optimizer):
    """`reinforce`: policy-gradient steps on a `ProbGraph` over the largest mix's worker slots."""

    class Options(MixOptions):
        lr: float = Field(0.1, gt=0.0, description="Adam's learning rate")
        samples: int | None = Field(None, ge=1, description="graphs per ask (default: batch), each on "
                                                            "batch // samples items")
        baseline: Literal["none", "moving-average"] = Field("none", description="subtracted from the utility")
        momentum: float = Field(0.9, ge=0.0, lt=1.0, description="of the moving-average baseline")
        realize: bool = Field(True, description="the last ask proposes the realized graph")

        @field_validator("baseline", mode="before")
        @classmethod
        def _dashes(cls, value: Any) -> Any:
            return value.replace("_", "-") if isinstance(value, str) else value

    name = "reinforce"
    opts: Options

    def __init__(self, space: SearchSpace, **kwargs: Any) -> None:  # seed, iterations, batch, context, options
        super().__init__(space, **kwargs)
        self.samples = max(1, min(self.opts.samples or self.batch, self.batch))
        self.items_per_sample = max(1, self.batch // self.samples)
        self.dist = ProbGraph(space, slots=worker_slots(space, self.opts.budget_filling))
        self.adam = Adam(flat_params(self.dist).size, lr=self.opts.lr)
        self.baseline: float | None = None
        self.asks = 0
        self._pending: list[Graph | None] = []

    async def ask(self) -> list[Proposal]:
        self.asks += 1
        if self.opts.realize and self.iterations > 1 and self.asks == self.iterations:
            self._pending = [None]
            return [Proposal(realize(self.dist, self.space, self.rng), self.batch, {"realized": True})]
        self._pending = []
        proposals = []
        for _ in range(self.samples):
            graph, logp = self.dist.sample(self.rng)
            # The gradient is of the whole draw (dead nodes included), whose log p `logp` is; the
            # pruned graph that is run would miss the edges and roles that were drawn and lost.
            self._pending.append(self.dist.last_draw or graph)
            proposals.append(Proposal(graph, self.items_per_sample, {"logp": logp}))
        return proposals

    def tell(self, evaluations: list[Evaluation]) -> None:
        super().tell(evaluations)
        pairs = [(g, e) for g, e in zip(self._pending, evaluations) if g is not None and e.scored > 0]
        self._pending = []
        if not pairs:
            return  # the realized graph, or nothing scored: no gradient
        utils = np.array([e.utility for _, e in pairs], float)
        moving = self.opts.baseline == "moving-average"
        base = self.baseline if (moving and self.baseline is not None) else 0.0
        if moving:
            mean = float(utils.mean())
            m = self.opts.momentum
            self.baseline = mean if self.baseline is None else m * self.baseline + (1 - m) * mean
        # loss = −mean((U − b)·log p(G))  ⇒  ∇loss = −mean((U − b)·∇log p(G))
        grads = []
        for (graph, _), u in zip(pairs, utils):
            grads.append((u - base) * _flat(self.dist.score_function(graph)))
        grad = -np.mean(grads, axis=0)
        if np.any(grad):
            set_flat_params(self.dist, self.adam.step(flat_params(self.dist), grad))

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state.update({"dist": self.dist.state_dict(), "adam": self.adam.state_dict(),
                      "baseline": self.baseline, "asks": self.asks})
        return state

    def load_state_dict(self, state: dict[str, Any], history: Sequence[Evaluation] = ()) -> None:
        super().load_state_dict(state, history)
        self.dist.load_state_dict(state["dist"])
        self.adam.load_state_dict(state["adam"])
        self.baseline = state.get("baseline")
        self.asks = int(state.get("asks", 0))
        self._pending = []
