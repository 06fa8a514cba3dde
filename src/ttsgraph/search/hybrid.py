"""The LLM/REINFORCE hybrid baseline (SPEC §7 `MaaoSwarm`): gradient steps and LLM rewrites, alternating.

Numeric REINFORCE learns slowly from a handful of 0/1 rewards; an LLM can make large, informed
jumps but has no memory beyond its prompt. The hybrid alternates the two on one GPTSwarm
distribution: odd asks are ordinary REINFORCE steps (sample graphs, score them, Adam step on
−mean(log p·U)); even asks first show the agent the current edge and fuser probability tables
with the graphs just scored and their accuracies, let it rewrite the tables, then sample the next
graph from the rewritten distribution. Every ask spends one batch, like every other optimizer,
and every scored graph also feeds the gradient.

A reply that does not parse (unknown edge, probability outside [0, 1], no JSON) is retried with
the error; if every attempt fails the tables are left as the gradient made them, and the reason
is logged in the agent transcript and the proposal's meta.
"""

from __future__ import annotations

import json
from typing import Any

from ttsgraph.errors import AgentReplyError, BackendError, TtsGraphError
from ttsgraph.graph_io import to_text
from ttsgraph.llm.base import Message, SamplingParams
from ttsgraph.search import agent_prompts as P
from ttsgraph.search.agent import AgentClient, Exchange
from ttsgraph.search.agent_replies import extract_json
from ttsgraph.search.base import Evaluation, Proposal, register
from ttsgraph.search.reinforce import Reinforce

_CLIP = (0.01, 0.99)  # a rewritten probability never becomes certain: the gradient can still move it


def _softmax_fuser(row: Any) -> float:
    import numpy as np

    z = np.exp(row - row.max())
    return float((z / z.sum())[1])


def _logit(p: float) -> float:
    import math

    p = min(max(p, _CLIP[0]), _CLIP[1])
    return math.log(p / (1 - p))


def rewrite_prompt(task: str, edges: dict[str, float], fuser: dict[str, float], scored: list[dict[str, Any]],
                   slots: list[str], models: dict[str, int]) -> str:
    """What the agent sees in an LLM step: the distribution as two tables and the last graphs."""
    lines = [
        f"Task: {task}. We search a multi-agent system for it. {P.SYSTEM_IS_A_DAG}",
        f"Graphs are sampled from a probabilistic graph over worker slots {', '.join(slots)} and the output "
        "node 'out'. Every potential edge is kept with its probability; a node fed only by assistants "
        "becomes a fuser (reviews and condenses its inputs) with its fuser probability plus 0.5.",
        f"Models available per worker (unit costs within the budget): {P.counts_text(models)}.",
        "Graphs just sampled and how they scored:",
    ]
    for k, s in enumerate(scored, 1):
        lines.append(f"[{k}] accuracy {100 * s['accuracy']:.0f}% on {s['scored']} question(s)\n{s['graph']}")
    lines += [
        "Current edge probabilities:\n" + json.dumps(edges, separators=(", ", ": ")),
        "Current fuser probabilities:\n" + json.dumps(fuser, separators=(", ", ": ")),
        "Rewrite the two tables to make high-accuracy graphs likelier: raise edges that appeared in graphs "
        "that scored well, lower edges of graphs that scored poorly, keep the graph sparse enough to stay "
        "within the budget. Reply with one JSON object and nothing else: "
        '{"edge_probabilities": {"<src>-><dst>": p, ...}, "fuser_probabilities": {"<node>": p, ...}} '
        "with every p between 0.0 and 1.0; keys you leave out keep their value.",
    ]
    return "\n\n".join(lines)


def rewrite_schema(edge_keys: list[str], slots: list[str]) -> dict[str, Any]:
    """JSON Schema of the rewrite reply (values from `PROB_LEVELS`, so a weak agent cannot ramble)."""
    levels = {"enum": list(P.PROB_LEVELS)}
    return {
        "type": "object",
        "properties": {
            "edge_probabilities": {"type": "object", "properties": {k: levels for k in edge_keys},
                                   "required": edge_keys, "additionalProperties": False},
            "fuser_probabilities": {"type": "object", "properties": {s: levels for s in slots},
                                    "required": slots, "additionalProperties": False},
        },
        "required": ["edge_probabilities", "fuser_probabilities"],
        "additionalProperties": False,
    }


def parse_rewrite(text: str, edge_keys: set[str], slots: set[str]) -> tuple[dict[str, float], dict[str, float]]:
    """Read the rewrite reply; raises AgentReplyError naming the bad key or value."""
    data = extract_json(text)
    if not isinstance(data, dict):
        raise AgentReplyError("the reply must be a JSON object with edge_probabilities and fuser_probabilities")
    out: list[dict[str, float]] = []
    for field, known in (("edge_probabilities", edge_keys), ("fuser_probabilities", slots)):
        table = data.get(field, {})
        if not isinstance(table, dict):
            raise AgentReplyError(f"{field} must be an object mapping keys to probabilities")
        parsed: dict[str, float] = {}
        for key, value in table.items():
            if key not in known:
                raise AgentReplyError(f"{field}: unknown key {key!r} (known: {', '.join(sorted(known)[:8])}, …)")
            try:
                p = float(value)
            except (TypeError, ValueError):
                raise AgentReplyError(f"{field}[{key!r}]: {value!r} is not a number") from None
            if not 0.0 <= p <= 1.0:
                raise AgentReplyError(f"{field}[{key!r}]: probability {p} is not in [0, 1]")
            parsed[key] = p
        out.append(parsed)
    if not out[0] and not out[1]:
        raise AgentReplyError("the reply changes no probability: give edge_probabilities and fuser_probabilities")
    return out[0], out[1]


@register
class Hybrid(Reinforce):
    """`hybrid`: the options of `reinforce` plus `backend` (required), `agent` (agent model;
    default: the pool's largest chat model), `task`, `agent_retries` (2), `agent_max_tokens` (768)."""

    name = "hybrid"

    def __init__(self, space: Any, *, seed: int = 0, iterations: int = 10, batch: int = 3, **options: Any) -> None:
        super().__init__(space, seed=seed, iterations=iterations, batch=batch, **options)
        backend = options.get("backend")
        if backend is None:
            raise TtsGraphError("hybrid needs a backend for its agent (backend=...)")
        from ttsgraph.search.agent_reinforce import default_agent

        self.agent_model = str(options.get("agent") or default_agent(space.pool))
        if self.agent_model not in space.pool.specs:
            raise TtsGraphError(f"agent model {self.agent_model!r} is not in the pool ({', '.join(space.pool.models)})")
        task = options.get("task")
        self.task_name = str(getattr(task, "name", task) or "the task")
        self.retries = int(options.get("agent_retries", 2))
        params = SamplingParams(temperature=float(options.get("agent_temperature", 0.1)), top_p=1.0,
                                max_tokens=int(options.get("agent_max_tokens", 768)))
        self.client = AgentClient(backend, self.agent_model, params)
        self.last_scored: list[dict[str, Any]] = []
        self.rewrites = 0
        self.fallbacks: list[dict[str, Any]] = []

    # ---- the LLM step ----------------------------------------------------------------------
    def _tables(self) -> tuple[dict[str, float], dict[str, float]]:
        import numpy as np

        learnt = 1.0 / (1.0 + np.exp(-self.dist.edge_logits))
        edges = {P.edge_key(u, v): round(float(learnt[i]), 2) for i, (u, v) in enumerate(self.dist.potential)}
        fuser = {s: round(_softmax_fuser(self.dist.role_logits[k]), 2) for k, s in enumerate(self.dist.ids)}
        return edges, fuser

    def _apply(self, edges: dict[str, float], fuser: dict[str, float]) -> None:
        index = {P.edge_key(u, v): i for i, (u, v) in enumerate(self.dist.potential)}
        for key, p in edges.items():
            self.dist.edge_logits[index[key]] = _logit(p)
        for k, slot in enumerate(self.dist.ids):
            if slot in fuser:
                self.dist.role_logits[k] = [0.0, _logit(fuser[slot])]

    async def _rewrite(self, iteration: int) -> dict[str, Any]:
        edges, fuser = self._tables()
        costs = self.space.unit_costs()
        prompt = rewrite_prompt(self.task_name, edges, fuser, self.last_scored, list(self.dist.ids), costs)
        schema = rewrite_schema(list(edges), list(self.dist.ids))
        messages: list[Message] = [{"role": "system", "content": P.SYSTEM}, {"role": "user", "content": prompt}]
        why = ""
        for attempt in range(self.retries + 1):
            try:
                text, _ = await self.client.ask(messages, schema, kind="rewrite" if not attempt else "rewrite-retry",
                                                iteration=iteration, attempt=attempt)
            except BackendError as exc:
                why = f"agent call failed: {exc.reason}"
                break
            try:
                new_edges, new_fuser = parse_rewrite(text, set(edges), set(self.dist.ids))
            except AgentReplyError as exc:
                why = str(exc)
                self.client.reject(why)
                messages = messages + [{"role": "assistant", "content": text},
                                       {"role": "user", "content": P.retry_prompt(why)}]
                continue
            self._apply(new_edges, new_fuser)
            return {"source": "agent-rewrite", "changed": len(new_edges) + len(new_fuser), "attempts": attempt + 1}
        self.fallbacks.append({"iteration": iteration, "reason": why})
        self.client.annotate(fallback="kept the gradient's tables")
        return {"source": "fallback-gradient-tables", "fallback": why}

    # ---- ask/tell ------------------------------------------------------------------------
    async def ask(self) -> list[Proposal]:
        llm_step = self.asks % 2 == 1 and bool(self.last_scored)
        final = self.do_realize and self.iterations > 1 and self.asks + 1 == self.iterations
        if not llm_step or final:
            proposals = await super().ask()
            for p in proposals:
                p.meta["step"] = "realize" if p.meta.get("realized") else "reinforce"
            return proposals
        self.asks += 1
        info = await self._rewrite(self.asks)
        self.rewrites += 1
        graph, logp = self.dist.sample(self.rng)
        self._pending = [graph]
        return [Proposal(graph, self.batch, {"step": "llm", "logp": logp, **info})]

    def tell(self, evaluations: list[Evaluation]) -> None:
        graphs = [g for g in self._pending if g is not None]
        super().tell(evaluations)
        scored = [(g, e) for g, e in zip(graphs, evaluations) if e.scored > 0]
        if scored:
            self.last_scored = [{"graph": to_text(g), "accuracy": e.accuracy, "scored": e.scored} for g, e in scored]

    def drain_exchanges(self) -> list[Exchange]:
        return self.client.drain()

    def agent_seconds(self) -> float:
        return self.client.total_wall

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state.update({"last_scored": self.last_scored, "rewrites": self.rewrites, "fallbacks": self.fallbacks,
                      "agent": self.client.state_dict()})
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.last_scored = list(state.get("last_scored", []))
        self.rewrites = int(state.get("rewrites", 0))
        self.fallbacks = list(state.get("fallbacks", []))
        self.client.load_state_dict(state.get("agent", {}))
