"""Agent-REINFORCE (SPEC §4): REINFORCE's sample → gradient → update, with an LLM agent writing
the "gradient" as text.

One study of this optimizer goes through four phases, each an ask/tell round with the study:

1. **init** — the agent picks two budget-filling model mixes from `space.combos()`, reading the
   Insight-1 profile and the insights (SPEC §4.4);
2. **pretest** — smaller variants of both picks (drop the smallest models first, up to
   `pretest_variants` per pick) are each scored on one search item as ordinary proposals, so the
   study counts and stores them; the best variant's mix is kept;
3. **initial** — a random graph with that mix (`space.random_graph`, GPTSwarm density, roles per
   SPEC §3.2) is scored on a batch;
4. **update** (every later round) — the agent sees the task, the required model counts, the last
   graph, its accuracy (and latency under the latency objective), the edge-probability table,
   the last two exchanges and the rules; it replies with the next graph and an updated table.
   Malformed replies (cyclic, unknown or renamed ids, wrong counts, broken role rules, CJK text)
   are retried up to `agent_retries` times with the error fed back; if every attempt fails, the
   next graph is sampled from the current table and the reason is recorded. The graph is then
   repaired to the budget (nodes removed that way leave the required counts).

With `proposal="sample"` the next graph is drawn from the agent's updated table (θ) with the
agent's model placement instead of taken as written (the paper's text framing, SPEC §10.3).

Everything mutable lives in `state_dict()`; what `ask()` computes is only committed in `tell()`,
so a study resumed from the state stored after any tell asks exactly what it asked before
(the response cache returns the same agent replies, the RNG is restored).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from ttsgraph.errors import AgentReplyError, BackendError, TtsGraphError
from ttsgraph.graph import Graph, Node
from ttsgraph.llm.base import Message, SamplingParams
from ttsgraph.search import agent_prompts as P
from ttsgraph.search.agent import AgentClient, Exchange
from ttsgraph.search.agent_replies import Rules, parse_init_reply, parse_update_reply
from ttsgraph.search.base import Evaluation, Optimizer, Proposal, register
from ttsgraph.search.prob_graph import ProbGraph
from ttsgraph.search.role_rules import fix_roles
from ttsgraph.search.space import OUTPUT_ID, counts_of, worker_id

DEFAULT_EDGE_P = 0.119  # sigmoid(-2): GPTSwarm's initial edge density (SPEC §3.2)
PRETEST_EDGE_P = 0.5  # the pretest's random graphs: edges ~ Bern(sigmoid(0)) (SPEC §4.1)
HISTORY_MAX_MODELS = 5  # with more nodes than this the history is dropped (context control, SPEC §4.1)
CHARS_PER_TOKEN = 3.5  # conservative estimate used to keep prompts inside a small agent's context


def default_agent(pool: Any) -> str:
    """The largest chat model of the pool (a base model can still answer JSON under a grammar)."""
    ordered = pool.by_size()[::-1]
    chat = [m for m in ordered if pool.spec(m).chat]
    return (chat or ordered)[0]


def _potential(ids: list[str], output: str, forward_only: bool = False) -> list[tuple[str, str]]:
    """Potential edges in ProbGraph's order: ordered worker pairs (only earlier → later ones with
    `forward_only`), then worker → output."""
    workers = [i for i in ids if i != output]
    pairs = [(u, v) for a, u in enumerate(workers) for b, v in enumerate(workers) if a != b and (a < b or not forward_only)]
    return pairs + [(u, output) for u in workers]


def _compact(graph: Graph) -> tuple[Graph, dict[str, str]]:
    """Rename workers to n1..nk in a topological order (the output becomes `out`), so edges only
    go from lower to higher numbers, and the table and a ProbGraph over k slots line up after
    nodes were removed."""
    workers = [i for i in graph.topological_order() if i != graph.output]
    mapping = {old: worker_id(k) for k, old in enumerate(workers)}
    mapping[graph.output] = OUTPUT_ID
    ordered = [graph.node(i) for i in workers] + [graph.node(graph.output)]
    g = Graph(ordered, list(graph.edges), graph.output).relabeled(mapping)
    return g, mapping


@register
class AgentReinforce(Optimizer):
    """`agent-reinforce`. Options (all optional except `backend`):

    - `backend`: the study's Backend (agent calls go through it and its cache);
    - `agent`: the agent model (default: the pool's largest chat model);
    - `task`: the Task (or its name) the prompts talk about;
    - `profile`: Insight-1 data (`ttsgraph.profile.Profile` or its dict); default: a stored
      profile for this task and pool, else the paper's table for the paper pool, else none;
    - `objective`: "accuracy" or "accuracy-latency" (latency prompts, relaxed R1, SPEC §4.5);
    - `proposal`: "agent" (default) or "sample";
    - `agent_format`: "json" (default; JSON Schema-constrained) or "text" (the paper's blocks);
    - `agent_retries` (3), `history` (2 exchanges), `pretest` (True), `pretest_variants` (5),
      `agent_max_tokens`, `agent_temperature` (0.1), `agent_context` (tokens; default 2048 for
      embedded agents, unlimited otherwise), `edge_p` (0.119, the initial graph's density),
      `retry_temperature_step` (0.3: retry k is asked at temperature + 0.3·k, at most 1).
    """

    name = "agent-reinforce"

    def __init__(self, space: Any, *, seed: int = 0, iterations: int = 10, batch: int = 3, **options: Any) -> None:
        super().__init__(space, seed=seed, iterations=iterations, batch=batch, **options)
        backend = options.get("backend")
        if backend is None:
            raise TtsGraphError("agent-reinforce needs a backend for its agent (the study passes backend=...)")
        pool = space.pool
        self.agent_model = str(options.get("agent") or default_agent(pool))
        if self.agent_model not in pool.specs:
            raise TtsGraphError(f"agent model {self.agent_model!r} is not in the pool ({', '.join(pool.models)})")
        task = options.get("task")
        self.task_name = str(getattr(task, "name", task) or "the task")
        objective = str(options.get("objective", "accuracy"))
        if objective not in ("accuracy", "accuracy-latency"):
            raise TtsGraphError(f"agent-reinforce: unknown objective {objective!r} (accuracy, accuracy-latency)")
        self.latency = objective == "accuracy-latency"
        self.proposal_mode = str(options.get("proposal", "agent"))
        if self.proposal_mode not in ("agent", "sample"):
            raise TtsGraphError(f"agent-reinforce: proposal must be 'agent' or 'sample', got {self.proposal_mode!r}")
        fmt = str(options.get("agent_format", "json"))
        if fmt not in ("json", "text"):
            raise TtsGraphError(f"agent-reinforce: agent_format must be 'json' or 'text', got {fmt!r}")
        self.json_reply = fmt == "json"
        self.retries = int(options.get("agent_retries", 3))
        self.history_turns = int(options.get("history", 2))
        self.pretest = bool(options.get("pretest", True))
        self.pretest_variants = max(1, int(options.get("pretest_variants", 5)))
        self.edge_p = float(options.get("edge_p", DEFAULT_EDGE_P))
        self.retry_temperature_step = float(options.get("retry_temperature_step", 0.3))
        self.picks = 2
        binding = pool.spec(self.agent_model).binding
        default_ctx = 2048 if binding is not None and binding.kind == "local" else None
        ctx = options.get("agent_context", default_ctx)
        self.context: int | None = int(ctx) if ctx else None
        max_tokens = int(options.get("agent_max_tokens") or (1024 if self.json_reply else 4096))
        params = SamplingParams(temperature=float(options.get("agent_temperature", 0.1)), top_p=1.0,
                                max_tokens=max_tokens)
        self.client = AgentClient(backend, self.agent_model, params)
        self.profile = self._resolve_profile(options.get("profile"), task)
        self.output_id = OUTPUT_ID

        # ---- committed state (see state_dict) ----
        self.phase = "init"  # init -> pretest -> initial -> update
        self.picked: list[dict[str, int]] = []
        self.variants: list[dict[str, int]] = []
        self.counts: dict[str, int] = {}
        self.view: Graph | None = None  # last graph as the agent sees it (unused nodes included)
        self.table: dict[str, float] = {}  # "src->dst" -> p over the potential edges of `view`
        self.turns: list[dict[str, str]] = []  # accepted (prompt, reply) pairs, for the history
        self.last: dict[str, Any] = {}  # accuracy, latency, scored of the last scored graph
        self.note: str | None = None  # told to the agent next round (budget repair)
        self.round = 0  # graphs scored by the batch (initial + update rounds)
        self.iteration = 0  # completed ask/tell rounds = the study's iteration of the next ask
        self.retry_count = 0
        self.fallbacks: list[dict[str, Any]] = []
        # ---- what the last ask computed, committed by tell ----
        self._pending: dict[str, Any] | None = None
        self._rng_before: dict[str, Any] | None = None
        self._phase_before = self.phase

    # ------------------------------------------------------------------------------------------
    def _resolve_profile(self, profile: Any, task: Any) -> dict[str, Any] | None:
        if isinstance(profile, str) and profile:
            from ttsgraph.profile import load_profile

            return load_profile(profile).to_dict()
        if profile is not None:
            return profile.to_dict() if hasattr(profile, "to_dict") else dict(profile)
        if task is None:
            return None
        try:
            from ttsgraph.profile import find_profile

            found = find_profile(task, self.space.pool)
        except (ImportError, TtsGraphError, OSError):
            return None
        return found.to_dict() if found is not None else None

    @property
    def model_order(self) -> list[str]:
        return list(self.space.models)

    def _output_node(self) -> Node:
        assert self.view is not None
        return self.view.node(self.view.output)

    # ------------------------------------------------------------------------------------------
    async def ask(self) -> list[Proposal]:
        self._rng_before = self.rng.bit_generator.state
        self._phase_before = self.phase
        if self.phase == "init":
            return await self._ask_init()
        if self.phase == "initial":
            return self._ask_initial(self.counts)
        if self.phase.endswith("-wait"):
            raise TtsGraphError(f"agent-reinforce: ask() called twice without tell() (phase {self.phase})")
        if self.phase == "update":
            return await self._ask_update()
        raise TtsGraphError(f"agent-reinforce: ask() called twice without tell() (phase {self.phase})")

    def tell(self, evaluations: list[Evaluation]) -> None:
        if self._pending is None:
            raise TtsGraphError("agent-reinforce: tell() without a pending ask()")
        if not evaluations:  # the study had no budget left for this ask: nothing learnt
            self._pending, self._rng_before = None, None
            self.phase = self._phase_before
            return
        super().tell(evaluations)
        pending, self._pending = self._pending, None
        self._rng_before = None
        self.iteration += 1
        self.picked = pending.get("picked", self.picked)
        self.variants = pending.get("variants", self.variants)
        self.retry_count += pending.get("retries", 0)
        self.fallbacks.extend(pending.get("fallbacks", []))
        kind = pending["kind"]
        if kind == "pretest":
            scores = [e.utility for e in evaluations]
            best = max(scores)
            tied = [k for k, s in enumerate(scores) if s == best]
            choice = tied[int(self.rng.integers(len(tied)))] if len(tied) > 1 else tied[0]
            self.counts = dict(pending["variants"][choice])
            self.phase = "initial"
            return
        # a scored graph: initial or update round
        ev = evaluations[0]
        self.counts = pending["counts"]
        self.view = pending["view"]
        self.table = pending["table"]
        self.note = pending.get("note")
        if pending.get("turn"):
            self.turns.append(pending["turn"])
            self.turns = self.turns[-max(self.history_turns, 0):] if self.history_turns else []
        self.last = {"accuracy": ev.accuracy, "latency": ev.latency, "scored": ev.scored, "utility": ev.utility}
        self.round += 1
        self.phase = "update"

    # ------------------------------------------------------------------------------------------
    async def _ask_init(self) -> list[Proposal]:
        combos = [{m: int(c.get(m, 0)) for m in self.model_order} for c in self.space.combos()]
        if not combos:
            raise TtsGraphError("agent-reinforce: the budget admits no model mix")
        fallbacks: list[dict[str, Any]] = []
        retries = 0
        if len(combos) == 1:
            picked = [combos[0]]
        else:
            picked, retries, why = await self._agent_init(combos)
            if picked is None:
                order = self.rng.permutation(len(combos))[: self.picks]
                picked = [combos[int(k)] for k in order]
                fallbacks.append({"phase": "init", "reason": why, "picked": picked})
        variants = self._variants(picked)
        if not self.pretest or len(variants) == 1:
            # no pretest: go straight to the initial graph with the first pick
            proposals = self._ask_initial(picked[0])
            assert self._pending is not None
            self._pending.update({"picked": picked, "variants": variants, "retries": retries, "fallbacks": fallbacks})
            return proposals
        proposals = []
        for k, counts in enumerate(variants):
            g = self.space.random_graph(counts, self.rng, PRETEST_EDGE_P)
            g = Graph([Node(n.id, n.model, "assistant") for n in g.nodes], list(g.edges), g.output)
            # scored on one item to choose a mix, not to compete for "best" (the study may skip it)
            proposals.append(Proposal(g, 1, {"phase": "pretest", "variant": k, "counts": counts, "candidate": False}))
        self._pending = {"kind": "pretest", "picked": picked, "variants": variants, "retries": retries,
                         "fallbacks": fallbacks}
        self.phase = "pretest-wait"
        return proposals

    async def _agent_init(self, combos: list[dict[str, int]]) -> tuple[list[dict[str, int]] | None, int, str]:
        prompt = P.init_prompt(self.task_name, combos, self.profile, picks=self.picks, latency=self.latency,
                               json_reply=self.json_reply)
        schema = P.init_schema(len(combos), self.picks) if self.json_reply else None
        messages: list[Message] = [{"role": "system", "content": P.SYSTEM}, {"role": "user", "content": prompt}]
        retries = 0
        why = ""
        for attempt in range(self.retries + 1):
            try:
                text, _ = await self.client.ask(messages, schema, kind="init" if not attempt else "init-retry",
                                                iteration=self.iteration, attempt=attempt,
                                                max_tokens=self._max_tokens(messages),
                                                temperature=self._temperature(attempt))
            except BackendError as exc:
                return None, retries, f"agent call failed: {exc.reason}"
            try:
                picks = parse_init_reply(text, combos, self.picks)
            except AgentReplyError as exc:
                why = str(exc)
                self.client.reject(why)
                retries += int(attempt < self.retries)
                messages = messages + [{"role": "assistant", "content": text},
                                       {"role": "user", "content": P.retry_prompt(why, json_reply=self.json_reply)}]
                continue
            unique: list[dict[str, int]] = []
            for p in picks:
                full = {m: int(p.get(m, 0)) for m in self.model_order}
                if full not in unique:
                    unique.append(full)
            return unique, retries, ""
        return None, retries, f"no usable reply after {self.retries + 1} attempts: {why}"

    def _variants(self, picked: list[dict[str, int]]) -> list[dict[str, int]]:
        """Each pick, then copies with one more of the smallest remaining model removed, up to
        `pretest_variants` per pick (SPEC §4.1), without duplicates."""
        out: list[dict[str, int]] = []
        for pick in picked:
            chain = [dict(pick)]
            cur = dict(pick)
            for model in self.model_order:  # smallest first
                while cur.get(model, 0) > 0 and len(chain) < self.pretest_variants:
                    cur = dict(cur)
                    cur[model] -= 1
                    if sum(cur.values()) > 0:
                        chain.append(cur)
            for c in chain:
                if c not in out:
                    out.append(c)
        return out

    def _ask_initial(self, counts: dict[str, int]) -> list[Proposal]:
        graph = self.space.random_graph(counts, self.rng, self.edge_p)
        graph, _ = _compact(graph)
        new_counts = {m: counts_of(graph).get(m, 0) for m in self.model_order}
        table = {P.edge_key(u, v): 0.0 for u, v in _potential(graph.ids, graph.output, self.json_reply)}
        self._pending = {"kind": "initial", "counts": new_counts, "view": graph, "table": table, "note": None}
        self.phase = "initial-wait"
        return [Proposal(graph, self.batch, {"phase": "initial", "counts": new_counts})]

    # ------------------------------------------------------------------------------------------
    def _table_rows(self) -> list[dict[str, Any]]:
        assert self.view is not None
        return [{"src": u, "dst": v, "prob": self.table.get(P.edge_key(u, v), 0.0)}
                for u, v in _potential(self.view.ids, self.view.output, self.json_reply)]

    def _rules(self) -> Rules:
        assert self.view is not None
        out = self._output_node()
        return Rules(ids=tuple(self.view.ids), output_id=out.id, output_model=out.model, output_role=out.role,
                     models=tuple(m for m in self.model_order if self.counts.get(m, 0) > 0) or (out.model,),
                     counts={m: k for m, k in self.counts.items() if k > 0},
                     edges=tuple(_potential(self.view.ids, self.view.output, self.json_reply)), latency=self.latency)

    def _temperature(self, attempt: int) -> float | None:
        """Retries are asked a little hotter (`retry_temperature_step` per attempt, at most 1.0):
        a low-temperature agent with a seeded backend would otherwise repeat the rejected reply."""
        if attempt == 0 or self.retry_temperature_step <= 0:
            return None
        return min(1.0, self.client.params.temperature + self.retry_temperature_step * attempt)

    def _estimate_tokens(self, messages: list[Message]) -> int:
        return int(sum(len(m.get("content", "")) + 8 for m in messages) / CHARS_PER_TOKEN) + 16

    def _max_tokens(self, messages: list[Message]) -> int | None:
        """Shrink the reply budget so prompt + reply fit a small agent's context window."""
        if self.context is None:
            return None
        room = self.context - self._estimate_tokens(messages)
        return max(64, min(self.client.params.max_tokens, room))

    def _history(self, user: str) -> list[Message]:
        """System + up to `history` earlier (prompt, reply) pairs + the new prompt. History is
        dropped with more than five worker nodes (SPEC §4.1) and trimmed, oldest first, so the
        prompt leaves room for the reply in a small agent's context."""
        turns = list(self.turns[-self.history_turns:]) if self.history_turns > 0 else []
        if sum(self.counts.values()) > HISTORY_MAX_MODELS:
            turns = []
        while True:
            messages: list[Message] = [{"role": "system", "content": P.SYSTEM}]
            for t in turns:
                messages += [{"role": "user", "content": t["prompt"]}, {"role": "assistant", "content": t["reply"]}]
            messages.append({"role": "user", "content": user})
            if not turns or self.context is None:
                return messages
            if self._estimate_tokens(messages) + min(512, self.client.params.max_tokens) <= self.context:
                return messages
            turns = turns[1:]

    async def _ask_update(self) -> list[Proposal]:
        assert self.view is not None
        iteration = self.iteration
        rows = self._table_rows()
        out = self._output_node()
        user = P.update_prompt(task=self.task_name, counts={m: k for m, k in self.counts.items() if k > 0},
                               graph=self.view, accuracy=float(self.last.get("accuracy", 0.0)),
                               batch=int(self.last.get("scored", self.batch) or self.batch), table=rows,
                               output_id=out.id, output_model=out.model, latency=self.last.get("latency"),
                               latency_objective=self.latency, json_reply=self.json_reply, note=self.note)
        rules = self._rules()
        schema = (P.update_schema(list(rules.ids), out.id, list(rules.models), out.model, out.role, list(rules.edges))
                  if self.json_reply else None)
        messages = self._history(user)
        reply = None
        why = ""
        retries = 0
        accepted_text = ""
        for attempt in range(self.retries + 1):
            try:
                text, _ = await self.client.ask(messages, schema, kind="update" if not attempt else "update-retry",
                                                iteration=iteration, attempt=attempt,
                                                max_tokens=self._max_tokens(messages),
                                                temperature=self._temperature(attempt))
            except BackendError as exc:
                why = f"agent call failed: {exc.reason}"
                break
            try:
                reply = parse_update_reply(text, rules)
                accepted_text = text
                break
            except AgentReplyError as exc:
                why = str(exc)
                self.client.reject(why)
                if attempt < self.retries:
                    retries += 1
                messages = messages + [{"role": "assistant", "content": text},
                                       {"role": "user", "content": P.retry_prompt(why, json_reply=self.json_reply)}]
        table = dict(self.table)
        fallbacks: list[dict[str, Any]] = []
        meta: dict[str, Any] = {"phase": "update", "round": self.round, "attempts": retries + 1,
                                "agent": self.agent_model}
        if reply is not None:
            for (u, v), p in reply.table.items():
                key = P.edge_key(u, v)
                if key in table:
                    table[key] = p
            if self.proposal_mode == "agent":
                graph = reply.graph
                meta["source"] = "agent"
            else:
                graph = self._sample(table, reply.graph)
                meta["source"] = "sampled-from-agent-table"
            meta["reply_form"] = reply.form
        else:
            graph = self._sample(table, self.view)
            meta["source"] = "fallback-sample"
            meta["fallback"] = why
            fallbacks.append({"phase": "update", "round": self.round, "iteration": iteration, "reason": why})
            self.client.annotate(fallback="sampled the next graph from the current edge table")
        # budget repair: removed nodes leave the required counts
        repaired, removed = self.space.repair(graph)
        dead = set(graph.pruned()[1])
        over_budget = [r for r in removed if r not in dead]
        counts = dict(self.counts)
        view = graph
        note = None
        if over_budget:
            for r in over_budget:
                counts[graph.node(r).model] -= 1
            keep = [n for n in graph.nodes if n.id not in over_budget]
            view = fix_roles(Graph(keep, [(u, v) for u, v in graph.edges if u not in over_budget and v not in over_budget],
                                   graph.output))
            meta["repaired"] = over_budget
        view, mapping = _compact(view)
        proposal = repaired.relabeled({k: v for k, v in mapping.items() if k in set(repaired.ids)})
        inverse = {new: old for old, new in mapping.items()}
        remapped = {P.edge_key(u, v): table.get(P.edge_key(inverse[u], inverse[v]), 0.0)
                    for u, v in _potential(view.ids, view.output, self.json_reply)}
        if over_budget:
            note = P.repair_note(over_budget, {m: k for m, k in counts.items() if k > 0})
            meta["renamed"] = {old: new for old, new in mapping.items() if old != new}
        meta["counts"] = counts
        meta["retries"] = retries
        turn = {"prompt": user, "reply": accepted_text} if reply is not None else None
        self._pending = {"kind": "update", "counts": counts, "view": view, "table": remapped, "note": note,
                         "turn": turn, "retries": retries, "fallbacks": fallbacks}
        self.phase = "update-wait"
        return [Proposal(proposal, self.batch, meta)]

    def _sample(self, table: dict[str, float], placement: Graph) -> Graph:
        """Draw a graph from the edge table θ with `placement`'s worker models on the same ids."""
        workers = [n for n in placement.nodes if n.id != placement.output]
        pg = ProbGraph(self.space, counts=dict(Counter(n.model for n in workers)))
        by_id = {n.id: n.model for n in workers}
        if set(by_id) == set(pg.ids):
            pg.fixed = [by_id[i] for i in pg.ids]
        pg.set_edge_table({(u, v): table.get(P.edge_key(u, v), 0.0) for u, v in pg.potential})
        graph, _ = pg.sample(self.rng)
        # the sampler prunes workers it left unconnected; keep them (isolated) in the agent's view
        present = set(graph.ids)
        missing = [Node(i, by_id[i]) for i in pg.ids if i not in present and i in by_id]
        if missing:
            workers_now = [n for n in graph.nodes if n.id != graph.output]
            graph = Graph(workers_now + missing + [graph.node(graph.output)], list(graph.edges), graph.output)
        return graph

    # ------------------------------------------------------------------------------------------
    def drain_exchanges(self) -> list[Exchange]:
        """Agent exchanges since the last drain (the study writes them to the store's agent_log)."""
        return self.client.drain()

    def agent_seconds(self) -> float:
        return self.client.total_wall

    def state_dict(self) -> dict[str, Any]:
        """Committed state only: an ask not yet told is forgotten (its RNG draws too), so a study
        resumed from this state re-asks it and gets the same proposals."""
        state = super().state_dict()
        phase = self.phase
        if self._pending is not None:
            phase = self._phase_before
            if self._rng_before is not None:
                state["rng"] = self._rng_before
        state.update({
            "phase": phase,
            "picked": self.picked,
            "variants": self.variants,
            "counts": self.counts,
            "view": self.view.to_dict() if self.view is not None else None,
            "table": self.table,
            "turns": self.turns,
            "last": self.last,
            "note": self.note,
            "round": self.round,
            "iteration": self.iteration,
            "retry_count": self.retry_count,
            "fallbacks": self.fallbacks,
            "agent": self.client.state_dict(),
            "profile": self.profile,
        })
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.phase = state.get("phase", "init")
        self.picked = [dict(p) for p in state.get("picked", [])]
        self.variants = [dict(v) for v in state.get("variants", [])]
        self.counts = {k: int(v) for k, v in state.get("counts", {}).items()}
        self.view = Graph.from_dict(state["view"]) if state.get("view") else None
        self.table = {k: float(v) for k, v in state.get("table", {}).items()}
        self.turns = list(state.get("turns", []))
        self.last = dict(state.get("last", {}))
        self.note = state.get("note")
        self.round = int(state.get("round", 0))
        self.iteration = int(state.get("iteration", 0))
        self.retry_count = int(state.get("retry_count", 0))
        self.fallbacks = list(state.get("fallbacks", []))
        self.client.load_state_dict(state.get("agent", {}))
        if "profile" in state:
            self.profile = state["profile"]
        self._pending = None
        self._rng_before = None

    def summary(self) -> dict[str, Any]:
        """What a report wants to know about this run of the optimizer."""
        return {"agent": self.agent_model, "picked": self.picked, "variants": self.variants, "counts": self.counts,
                "rounds": self.round, "retries": self.retry_count, "fallbacks": len(self.fallbacks),
                "agent_calls": self.client.calls, "proposal": self.proposal_mode,
                "objective": "accuracy-latency" if self.latency else "accuracy"}


__all__ = ["AgentReinforce", "default_agent"]
