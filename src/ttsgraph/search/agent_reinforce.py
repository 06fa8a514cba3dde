"""Agent-REINFORCE (SPEC §4): REINFORCE's sample → gradient → update, with an LLM agent writing
the "gradient" as text.

One study of this optimizer goes through four phases (`Phase`), each an ask/tell round with the study:

1. **init** — the agent picks two model mixes from `space.combos()` (under-filled too unless
   `budget_filling`), reading the Insight-1 profile the caller resolved (`SearchContext.profile`) and the insights (SPEC §4.4);
2. **pretest** — smaller variants of both picks (drop the smallest models first, up to
   `pretest_variants` per pick) are each scored on one search item as screening probes
   (`Proposal.candidate=False`), so the study counts and stores them; the best variant's mix is kept;
3. **initial** — a graph of the GPTSwarm sampler with that mix (`agent_init.swarm_draw`: edge
   density 0.119, roles and dropped unreached nodes per SPEC §3.2) is scored on a batch;
4. **update** (every later round) — the agent sees the task, the required model counts, the last
   graph, its accuracy (and latency under the latency objective), the edge-probability table,
   the last two exchanges and the rules; it replies with the next graph and an updated table.
   Malformed replies (cyclic, unknown or renamed ids, wrong counts, broken role rules, CJK text)
   are retried up to `agent_retries` times with the error fed back (`agent_loop`); if every
   attempt fails, the next graph is sampled from the current table and the reason is recorded.
   The graph is then repaired to the budget (nodes removed that way leave the required counts).
   Node ids stay the same from round to round, so the history speaks of the graph being edited.

With `proposal="sample"` the next graph is drawn from the agent's updated table (θ) with the
agent's model placement instead of taken as written (the paper's text framing, SPEC §10.3).

This module is the optimizer's control flow; the initialization (`agent_init`), the update round
(`agent_update`) and the state (`agent_state`) are their own modules. What `ask()` computes is
only committed in `tell()`, so a study resumed from the state stored after any tell asks exactly
what it asked before (the response cache returns the same agent replies, the RNG is restored).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar, Literal, TypeVar

from pydantic import Field

from ttsgraph.errors import TtsGraphError
from ttsgraph.graph import Graph
from ttsgraph.llm.base import Message
from ttsgraph.search import agent_prompts as P
from ttsgraph.search import agent_update as U
from ttsgraph.search.agent import AgentOptions, Exchange, agent_client, default_agent
from ttsgraph.search.agent_init import (
    choose_variant,
    combos_of,
    picks_parser,
    pretest_proposals,
    random_picks,
    swarm_draw,
    variants,
)
from ttsgraph.search.agent_loop import Answer, ask_parsed
from ttsgraph.search.agent_replies import parse_update_reply
from ttsgraph.search.agent_state import AgentState, Counts, Pending, Phase
from ttsgraph.search.base import (
    Evaluation,
    Optimizer,
    Proposal,
    SearchContext,
    register,
)
from ttsgraph.search.role_rules import with_roles
from ttsgraph.search.space import DEFAULT_EDGE_P, SearchSpace

OBJECTIVES = ("accuracy", "accuracy-latency")
LOCAL_AGENT_CONTEXT = 2048  # tokens: an embedded agent's default context window
T = TypeVar("T")


class UpdateOptions(AgentOptions):
    """The options of an optimizer whose agent writes the next graph (`agent-reinforce`, `textgrad`)."""

    proposal: Literal["agent", "sample"] = Field("agent", description="take the agent's graph as written, or "
                                                                      "sample one from its table")
    agent_format: Literal["json", "text"] = Field("json", description="JSON Schema-constrained replies, or the "
                                                                      "paper's text blocks")
    history: int = Field(2, ge=0, description="earlier exchanges shown to the agent")
    agent_context: int | None = Field(None, ge=0, description="the agent's context in tokens (default: 2048 for "
                                                              "a local agent, else unlimited; 0: unlimited)")
    edge_p: float = Field(DEFAULT_EDGE_P, ge=0.0, le=1.0, description="the initial graph's edge density")


class AgentReinforceOptions(UpdateOptions):
    """`agent-reinforce`'s options: the update options plus the pretest, and the paper's ablations
    (each switches off one piece of what the agent is told or does, so a bench row measures it):
    `insights=false`, `init=random`, `roles=assistant`, `pretest=false`."""

    pretest: bool = Field(True, description="score variants of the picks on one item each to choose the mix")
    pretest_variants: int = Field(5, ge=1, description="variants per pick")
    insights: bool = Field(True, description="show the pilot insights in the prompts (false: the insight ablation)")
    init: Literal["agent", "random"] = Field("agent", description="the agent picks the starting mixes, or "
                                                                  "random budget-filling mixes (the init ablation)")
    roles: Literal["mixed", "assistant"] = Field("mixed", description="assistants and fusers, or every node an "
                                                                      "assistant (the role ablation)")


@register
class AgentReinforce(Optimizer):
    """`agent-reinforce`. Options: `AgentReinforceOptions` (the agent's settings in `AgentOptions`);
    `agent_max_tokens` defaults to 1024 (json) / 4096 (text). The context gives the backend
    (required), the task the prompts talk about, the objective ("accuracy" or "accuracy-latency":
    latency prompts, relaxed R1, SPEC §4.5) and the profile (or None: no measurements)."""

    name = "agent-reinforce"
    Options: ClassVar[type[AgentOptions]] = AgentReinforceOptions
    opts: UpdateOptions
    initial_edge_prob: ClassVar[float] = 0.0  # the table over the initial graph
    stripped_prompt: ClassVar[bool] = False  # True: update prompts without the insights (TextGrad)
    lenient_replies: ClassVar[bool] = False  # True: check only what the stripped prompt states (TextGrad)
    reads_profile: ClassVar[bool] = True  # the initialization prompt shows `context.profile`
    picks: ClassVar[int] = 2

    def __init__(self, space: SearchSpace, *, seed: int = 0, iterations: int = 10, batch: int = 3,
                 context: SearchContext | None = None, **options: Any) -> None:
        super().__init__(space, seed=seed, iterations=iterations, batch=batch, context=context, **options)
        opts = self.opts
        if self.ctx.objective not in OBJECTIVES:
            raise TtsGraphError(f"{self.name}: unknown objective {self.ctx.objective!r} ({', '.join(OBJECTIVES)})")
        self.latency = self.ctx.objective == "accuracy-latency"
        self.json_reply = opts.agent_format == "json"
        self.client = agent_client(self.name, space, self.ctx, opts, 1024 if self.json_reply else 4096)
        self.agent_model = self.client.model
        binding = space.pool.spec(self.agent_model).binding
        window = opts.agent_context
        if window is None and binding is not None and binding.kind == "local":
            window = LOCAL_AGENT_CONTEXT
        self.agent_window: int | None = window or None  # the agent's context in tokens (None: unlimited)
        task = self.ctx.task
        self.task_name = str(getattr(task, "name", task) or "the task")
        self.state = AgentState()
        self._pending: Pending | None = None  # what the last ask computed, committed by tell
        self._rng_before: dict[str, Any] | None = None

    @property
    def model_order(self) -> list[str]:
        return list(self.space.models)

    @property
    def insights(self) -> bool:
        """Whether the prompts show the pilot insights (off in the insight ablation; TextGrad has none)."""
        return bool(getattr(self.opts, "insights", True))

    @property
    def assistants_only(self) -> bool:
        """The role ablation: every node an assistant, in the prompts, the schema and every proposal."""
        return getattr(self.opts, "roles", "mixed") == "assistant"

    def _roles(self, graph: Graph) -> Graph:
        if not self.assistants_only:
            return graph
        return with_roles(graph, {n.id: "assistant" for n in graph.nodes if n.role == "fuser"})

    # ------------------------------------------------------------------------------------------
    async def ask(self) -> list[Proposal]:
        if self._pending is not None:
            raise TtsGraphError(f"{self.name}: ask() called twice without tell()")
        self._rng_before = self.rng.bit_generator.state
        if self.state.phase is Phase.INIT:
            return await self._ask_init()
        if self.state.phase is Phase.INITIAL:
            return self._ask_initial(self.state.counts)
        return await self._ask_update()

    def tell(self, evaluations: list[Evaluation]) -> None:
        if self._pending is None:
            raise TtsGraphError(f"{self.name}: tell() without a pending ask()")
        pending, self._pending, self._rng_before = self._pending, None, None
        if not evaluations:  # the study had no budget left for this ask: nothing learnt
            return
        super().tell(evaluations)
        s = self.state
        s.iteration += 1
        s.retry_count += pending.retries
        s.fallback_count += pending.fallbacks
        if pending.picked is not None:
            s.picked, s.variants = pending.picked, list(pending.variants or [])
        if pending.kind is Phase.PRETEST:
            s.counts = dict(s.variants[choose_variant(evaluations, self.rng)])
            s.phase = Phase.INITIAL
            return
        s.commit(pending, self.opts.history)
        ev = evaluations[0]
        s.last = {"accuracy": ev.accuracy, "latency": ev.latency, "scored": ev.scored, "utility": ev.utility}

    # ---- init and pretest ----------------------------------------------------------------------
    async def _ask_init(self) -> list[Proposal]:
        opts = self.opts
        assert isinstance(opts, AgentReinforceOptions)
        combos = combos_of(self.space, self.opts.budget_filling)
        if not combos:
            raise TtsGraphError(f"{self.name}: the budget admits no model mix")
        retries, why, source = 0, "", None  # why: the reason the picks are random (the agent gave no usable reply)
        if opts.init == "random":  # the init ablation: random mixes that fill the budget, no agent call
            filling = combos_of(self.space, True) or combos
            picked, source = random_picks(filling, self.picks, self.rng), "random-init"
        elif len(combos) == 1:
            picked = [combos[0]]
        else:
            profile = self.ctx.profile.to_dict() if self.ctx.profile is not None else None
            prompt = P.init_prompt(self.task_name, combos, profile, picks=self.picks, latency=self.latency,
                                   json_reply=self.json_reply, insights=self.insights)
            messages: list[Message] = [{"role": "system", "content": P.SYSTEM}, {"role": "user", "content": prompt}]
            answer = await self._ask_agent(messages, picks_parser(combos, self.picks, self.model_order), "init",
                                           P.init_schema(len(combos), self.picks) if self.json_reply else None)
            retries = answer.retries
            picked = answer.value or random_picks(combos, self.picks, self.rng)
            if answer.value is None:
                why = answer.reason
                self.client.annotate(fallback="picked model mixes at random")
        mixes = variants(picked, self.model_order, opts.pretest_variants)
        if not opts.pretest or len(mixes) == 1:  # no pretest: the initial graph with the first pick
            proposals = self._ask_initial(picked[0])
            assert self._pending is not None
            self._pending.picked, self._pending.variants = picked, mixes
            self._pending.retries, self._pending.fallbacks = retries, int(bool(why))
        else:
            self._pending = Pending(Phase.PRETEST, retries=retries, fallbacks=int(bool(why)), picked=picked,
                                    variants=mixes)
            proposals = pretest_proposals(self.space, mixes, self.rng)
        for p in proposals:  # the trials record why the mixes were not the agent's
            if why:
                p.meta["fallback"] = why
            if source:
                p.meta["source"] = source
        return proposals

    def _ask_initial(self, counts: Counts) -> list[Proposal]:
        draw = self._roles(swarm_draw(self.space, counts, self.rng, self.opts.edge_p))
        table = {P.edge_key(u, v): self.initial_edge_prob for u, v in U.potential(draw.ids, draw.output)}
        settled = U.settle(self.space, draw, table, self.json_reply)
        self._pending = Pending(Phase.INITIAL, counts=settled.counts, view=settled.view, table=settled.table,
                                note=settled.note)
        return [Proposal(settled.proposal, self.batch, {"phase": Phase.INITIAL.value, "counts": settled.counts,
                                                        **settled.meta})]

    # ---- update rounds ---------------------------------------------------------------------------
    def _table_rows(self) -> list[dict[str, Any]]:
        assert self.state.view is not None
        return U.table_rows(self.state.view, self.state.table, self.json_reply)

    def _update_prompt(self) -> str:
        """The prompt of an update round: the last graph, its score, the table, the rules, and (not
        for TextGrad) the single-model accuracies and the worked example. With a small agent
        context the example goes first, then the accuracies, until the prompt leaves room for a reply."""
        s = self.state
        assert s.view is not None
        out = s.view.node(s.view.output)
        out_model = U.output_model_of(s.view, self.space, self.model_order)
        counts = {m: k for m, k in s.counts.items() if k > 0}
        extras: list[tuple[str | None, str | None]] = [(None, None)]
        if not self.stripped_prompt:
            profile = self.ctx.profile.to_dict() if self.ctx.profile is not None else None
            singles = P.singles_text(profile)
            example = P.worked_example(list(counts) or self.model_order, out.id, out_model,
                                       json_reply=self.json_reply, assistants_only=self.assistants_only)
            extras = [(singles, example), (singles, None), (None, None)]
        for singles, example in extras:
            prompt = P.update_prompt(task=self.task_name, counts=counts, graph=s.view,
                                     accuracy=float(s.last.get("accuracy", 0.0)),
                                     batch=int(s.last.get("scored", self.batch) or self.batch),
                                     table=self._table_rows(), output_id=out.id, output_model=out_model,
                                     latency=s.last.get("latency"), latency_objective=self.latency,
                                     json_reply=self.json_reply, note=s.note, stripped=self.stripped_prompt,
                                     singles=singles, example=example, insights=self.insights,
                                     assistants_only=self.assistants_only,
                                     incumbents=P.incumbents_text(self.reference))
            if self.agent_window is None or U.fits_context(prompt, self.agent_window, self.client.params.max_tokens):
                break
        return prompt

    async def _ask_update(self) -> list[Proposal]:
        s = self.state
        assert s.view is not None
        user = self._update_prompt()
        rules = U.rules_for(s.view, s.counts, self.model_order, forward_only=self.json_reply, latency=self.latency,
                            output_model=U.output_model_of(s.view, self.space, self.model_order),
                            lenient=self.lenient_replies, votes=not self.assistants_only)
        schema = (P.update_schema(list(rules.ids), rules.output_id, list(rules.models), rules.output_model,
                                  rules.output_role, list(rules.edges), assistants_only=self.assistants_only)
                  if self.json_reply else None)
        messages = U.history_messages(user, s.turns, keep=self.opts.history, workers=sum(s.counts.values()),
                                      context=self.agent_window, max_tokens=self.client.params.max_tokens)
        answer = await self._ask_agent(messages, lambda text: parse_update_reply(text, rules), "update", schema)
        reply = answer.value
        table = dict(s.table)
        meta: dict[str, Any] = {"phase": Phase.UPDATE.value, "round": s.round, "attempts": answer.attempts,
                                "agent": self.agent_model}
        if reply is not None:
            for (u, v), p in reply.table.items():
                if P.edge_key(u, v) in table:
                    table[P.edge_key(u, v)] = p
            if self.opts.proposal == "agent":
                graph, meta["source"] = reply.graph, "agent"
            else:
                graph, meta["source"] = U.sample_from_table(self.space, table, reply.graph, self.rng), \
                    "sampled-from-agent-table"
            meta["reply_form"] = reply.form
        else:
            graph = U.sample_from_table(self.space, table, s.view, self.rng)
            meta["source"], meta["fallback"] = "fallback-sample", answer.reason
            self.client.annotate(fallback="sampled the next graph from the current edge table")
        settled = U.settle(self.space, self._roles(graph), table, self.json_reply)
        meta.update(settled.meta)
        meta["counts"] = settled.counts
        meta["retries"] = answer.retries
        self._pending = Pending(Phase.UPDATE, counts=settled.counts, view=settled.view, table=settled.table,
                                note=settled.note, turn={"prompt": user, "reply": answer.text} if reply else None,
                                retries=answer.retries, fallbacks=int(reply is None))
        return [Proposal(settled.proposal, self.batch, meta)]

    async def _ask_agent(self, messages: list[Message], parse: Callable[[str], T], kind: str,
                         schema: dict[str, Any] | None) -> Answer[T]:
        """One ask → parse → retry loop with this optimizer's agent settings."""
        window = self.agent_window
        budget = None if window is None else (
            lambda msgs: U.reply_budget(window, self.client.params.max_tokens, msgs))
        return await ask_parsed(self.client, messages, parse, kind=kind, iteration=self.state.iteration,
                                retries=self.opts.agent_retries, schema=schema,
                                retry_step=self.opts.retry_temperature_step, json_reply=self.json_reply,
                                max_tokens=budget)

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
        if self._pending is not None and self._rng_before is not None:
            state["rng"] = self._rng_before
        state.update(self.state.to_dict())
        state["agent"] = self.client.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any], history: Sequence[Evaluation] = ()) -> None:
        super().load_state_dict(state, history)
        self.state = AgentState.from_dict(state)
        self.client.load_state_dict(state.get("agent", {}))
        self._pending = None
        self._rng_before = None


__all__ = ["AgentReinforce", "AgentReinforceOptions", "UpdateOptions", "default_agent"]
