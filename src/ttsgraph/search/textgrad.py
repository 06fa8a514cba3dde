"""A TextGrad-style baseline: the same LLM agent, without the paper's knowledge (SPEC §7 `TextgradSwarm`).

What makes Agent-REINFORCE more than "ask an LLM to edit the graph" is what it is told: the
Insight-1 initialization (profile data, two picks, a pretest), the insight rules and the advice
to grow from the output node. This baseline removes all of that and keeps the rest identical, so
the difference measures the value of the insights:

- the model mix is drawn at random from the budget-filling combos (no agent initialization, no
  pretest, no data);
- every update uses the *stripped* prompt (`agent_prompts.update_prompt(stripped=True)`: only the
  reply schema, acyclicity and "leave the output node alone"), with history;
- the edge-probability table starts at 0.5 everywhere instead of 0.

The agent loop itself (retries, budget repair, fallbacks, audit log, resumable state) is
Agent-REINFORCE's, inherited unchanged.
"""

from __future__ import annotations

from typing import Any

from ttsgraph.llm.base import Message
from ttsgraph.search import agent_prompts as P
from ttsgraph.search.agent_reinforce import AgentReinforce
from ttsgraph.search.base import Proposal, register

INITIAL_EDGE_PROB = 0.5


@register
class TextGrad(AgentReinforce):
    """`textgrad`: the options of `agent-reinforce` (backend, agent, task, agent_format, …);
    profile, pretest and objective are not used."""

    name = "textgrad"

    def __init__(self, space: Any, *, seed: int = 0, iterations: int = 10, batch: int = 3, **options: Any) -> None:
        options = {k: v for k, v in options.items() if k not in ("profile", "pretest", "objective")}
        super().__init__(space, seed=seed, iterations=iterations, batch=batch, pretest=False,
                         profile={}, **options)
        self.profile = None
        self._stripped_user: str | None = None

    async def _ask_init(self) -> list[Proposal]:
        """A random budget-filling mix (no agent, no pretest), then the initial random graph."""
        combos = [{m: int(c.get(m, 0)) for m in self.model_order} for c in self.space.combos()]
        if not combos:
            from ttsgraph.errors import TtsGraphError

            raise TtsGraphError("textgrad: the budget admits no model mix")
        counts = combos[int(self.rng.integers(len(combos)))]
        proposals = self._ask_initial(counts)
        assert self._pending is not None
        self._pending.update({"picked": [counts], "variants": [counts], "retries": 0, "fallbacks": []})
        for p in proposals:
            p.meta["source"] = "random-mix"
        return proposals

    def _ask_initial(self, counts: dict[str, int]) -> list[Proposal]:
        proposals = super()._ask_initial(counts)
        assert self._pending is not None
        self._pending["table"] = {k: INITIAL_EDGE_PROB for k in self._pending["table"]}
        return proposals

    def _history(self, user: str) -> list[Message]:
        """Agent-REINFORCE's messages with its update prompt replaced by the stripped one (same
        feedback: counts, last graph, its accuracy, the table; no insights, rules cut to three)."""
        assert self.view is not None
        out = self._output_node()
        stripped = P.update_prompt(
            task=self.task_name, counts={m: k for m, k in self.counts.items() if k > 0}, graph=self.view,
            accuracy=float(self.last.get("accuracy", 0.0)),
            batch=int(self.last.get("scored", self.batch) or self.batch), table=self._table_rows(),
            output_id=out.id, output_model=out.model, json_reply=self.json_reply, stripped=True, note=self.note)
        self._stripped_user = stripped
        return super()._history(stripped)

    def tell(self, evaluations: list[Any]) -> None:
        had_turn = bool(self._pending and self._pending.get("turn"))
        stripped, self._stripped_user = self._stripped_user, None
        super().tell(evaluations)
        if had_turn and stripped is not None and self.turns:
            # the history must show the agent what it was really asked
            self.turns[-1] = {**self.turns[-1], "prompt": stripped}
