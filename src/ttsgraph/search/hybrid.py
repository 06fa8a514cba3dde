"""The LLM/REINFORCE hybrid baseline (SPEC §7 `MaaoSwarm`): gradient steps and LLM rewrites, alternating.

Numeric REINFORCE learns slowly from a handful of 0/1 rewards; an LLM can make large, informed
jumps but has no memory beyond its prompt. The hybrid alternates the two on one GPTSwarm
distribution: odd asks are ordinary REINFORCE steps (sample graphs, score them, Adam step on
−mean(log p·U)); even asks first show the agent the current edge and fuser probability tables
with the graphs just scored and their accuracies, let it rewrite the tables, then sample the next
graph from the rewritten distribution. Every ask spends one batch, like every other optimizer,
and every scored graph also feeds the gradient.

The tables the agent reads and writes are the sampler's own probabilities (`ProbGraph.edge_table`
/ `fuser_table` and their setters): an edge shown as 0.119 is kept 11.9 % of the time, and an
edge the agent sets to 0.9 is kept 90 % of the time. (Showing the raw sigmoid(logit) instead, as
an earlier version did, told the agent 0.5 for an edge the sampler kept 11.9 % of the time, and
turned its 0.9 into 0.549.)

A reply that does not parse (unknown edge, probability outside [0, 1], no JSON) is retried with
the error; if every attempt fails the tables are left as the gradient made them, and the reason
is logged in the agent transcript and the proposal's meta.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, ClassVar

from pydantic import Field

from ttsgraph.errors import AgentReplyError
from ttsgraph.graph_io import to_text
from ttsgraph.llm.base import Message
from ttsgraph.search import agent_prompts as P
from ttsgraph.search.agent import AgentOptions, Exchange, agent_client
from ttsgraph.search.agent_loop import ask_parsed
from ttsgraph.search.agent_replies import extract_json, probability
from ttsgraph.search.base import Evaluation, OptimizerOptions, Proposal, SearchContext, register
from ttsgraph.search.reinforce import Reinforce
from ttsgraph.search.space import SearchSpace

_CLIP = (0.01, 0.99)  # a rewritten edge never becomes certain: the gradient can still move it
SHOWN_DIGITS = 3  # the tables are shown rounded to this many decimals (0.119 stays 0.119)


def _clip(p: float) -> float:
    return min(max(p, _CLIP[0]), _CLIP[1])


class HybridOptions(AgentOptions, Reinforce.Options):
    """`reinforce`'s options plus the agent's, with the hybrid's own defaults."""

    agent_retries: int = Field(2, ge=0, description="a rejected rewrite is asked again this often")
    agent_max_tokens: int | None = Field(768, ge=1, description="the rewrite's reply budget")
    retry_temperature_step: float = Field(0.0, ge=0.0, description="retry k at temperature + step·k (default: "
                                                                    "retries at the agent's temperature)")


def rewrite_prompt(task: str, edges: dict[str, float], fuser: dict[str, float], scored: list[dict[str, Any]],
                   slots: list[str], models: dict[str, int]) -> str:
    """What the agent sees in an LLM step: the distribution as two tables and the last graphs."""
    lines = [
        f"Task: {task}. We search a multi-agent system for it. {P.SYSTEM_IS_A_DAG}",
        f"Graphs are sampled from a probabilistic graph over worker slots {', '.join(slots)} and the output "
        "node 'out'. Every potential edge is kept with its probability; a node fed only by assistants "
        "becomes a fuser (reviews and condenses its inputs) with its fuser probability (at least 0.5).",
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
            parsed[key] = probability(value, f"{field}[{key!r}]")
        out.append(parsed)
    if not out[0] and not out[1]:
        raise AgentReplyError("the reply changes no probability: give edge_probabilities and fuser_probabilities")
    return out[0], out[1]


@register
class Hybrid(Reinforce):
    """`hybrid`: `HybridOptions`; the context gives the backend (required) and the task."""

    name = "hybrid"
    Options: ClassVar[type[OptimizerOptions]] = HybridOptions
    opts: HybridOptions

    def __init__(self, space: SearchSpace, *, seed: int = 0, iterations: int = 10, batch: int = 3,
                 context: SearchContext | None = None, **options: Any) -> None:
        super().__init__(space, seed=seed, iterations=iterations, batch=batch, context=context, **options)
        self.client = agent_client(self.name, space, self.ctx, self.opts, 768)
        self.agent_model = self.client.model
        task = self.ctx.task
        self.task_name = str(getattr(task, "name", task) or "the task")
        self.last_scored: list[dict[str, Any]] = []
        self.rewrites = 0
        self.fallback_count = 0

    # ---- the LLM step ----------------------------------------------------------------------
    def _tables(self) -> tuple[dict[str, float], dict[str, float]]:
        """The distribution as the agent sees it: each edge's probability exactly as the sampler
        keeps it (`ProbGraph.edge_table`, sparsity shift included) and each slot's fuser probability."""
        edges = {P.edge_key(r["src"], r["dst"]): round(float(r["prob"]), SHOWN_DIGITS) for r in self.dist.edge_table()}
        fuser = {s: round(p, SHOWN_DIGITS) for s, p in self.dist.fuser_table().items()}
        return edges, fuser

    def _apply(self, edges: dict[str, float], fuser: dict[str, float]) -> None:
        """Write the agent's tables back as the sampler's probabilities: edges clipped to `_CLIP`,
        fuser probabilities as written (the setter keeps them in the prior's reachable [0.5, 1], where
        even 1 is a finite logit)."""
        by_key = {P.edge_key(u, v): (u, v) for u, v in self.dist.potential}
        self.dist.set_edge_table({by_key[k]: _clip(p) for k, p in edges.items()})
        self.dist.set_fuser_table(fuser)

    async def _rewrite(self, iteration: int) -> dict[str, Any]:
        edges, fuser = self._tables()
        prompt = rewrite_prompt(self.task_name, edges, fuser, self.last_scored, list(self.dist.ids),
                                self.space.unit_costs())
        messages: list[Message] = [{"role": "system", "content": P.SYSTEM}, {"role": "user", "content": prompt}]
        answer = await ask_parsed(self.client, messages, lambda text: parse_rewrite(text, set(edges), set(fuser)),
                                  kind="rewrite", iteration=iteration, retries=self.opts.agent_retries,
                                  schema=rewrite_schema(list(edges), list(fuser)),
                                  retry_step=self.opts.retry_temperature_step)
        meta: dict[str, Any] = {"attempts": answer.attempts, "retries": answer.retries}
        if answer.value is None:
            self.fallback_count += 1
            self.client.annotate(fallback="kept the gradient's tables")
            return {"source": "fallback-gradient-tables", "fallback": answer.reason, **meta}
        new_edges, new_fuser = answer.value
        self._apply(new_edges, new_fuser)
        return {"source": "agent-rewrite", "changed": len(new_edges) + len(new_fuser), **meta}

    # ---- ask/tell ------------------------------------------------------------------------
    async def ask(self) -> list[Proposal]:
        llm_step = self.asks % 2 == 1 and bool(self.last_scored)
        final = self.opts.realize and self.iterations > 1 and self.asks + 1 == self.iterations
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
        """Agent exchanges since the last drain (the study writes them to the store's agent_log)."""
        return self.client.drain()

    def agent_seconds(self) -> float:
        return self.client.total_wall

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state.update({"last_scored": self.last_scored, "rewrites": self.rewrites,
                      "fallback_count": self.fallback_count, "agent": self.client.state_dict()})
        return state

    def load_state_dict(self, state: dict[str, Any], history: Sequence[Evaluation] = ()) -> None:
        super().load_state_dict(state, history)
        self.last_scored = list(state.get("last_scored", []))
        self.rewrites = int(state.get("rewrites", 0))
        self.fallback_count = int(state.get("fallback_count", 0))
        self.client.load_state_dict(state.get("agent", {}))
