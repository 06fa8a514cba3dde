"""A TextGrad-style baseline: the same LLM agent, without the paper's knowledge (SPEC §7 `TextgradSwarm`).

What makes Agent-REINFORCE more than "ask an LLM to edit the graph" is what it is told: the
Insight-1 initialization (profile data, two picks, a pretest), the insight rules and the advice
to grow from the output node. This baseline removes all of that and keeps the rest identical, so
the difference measures the value of the insights:

- the model mix is drawn at random from the combos (no agent initialization, no
  pretest, no data);
- every update uses the *stripped* prompt (`agent_prompts.update_prompt(stripped=True)`: only the
  reply schema, acyclicity and "leave the output node alone"), with history, and its replies are
  held to those rules only (`Rules.lenient`): any pool model on any worker, roles repaired, the
  budget repair for the rest, as the paper's code did; rejecting replies for rules the agent was
  never told would make it fall back to sampling far more often than the paper's TextGrad;
- the edge-probability table starts at 0.5 everywhere instead of 0.

The agent loop itself (retries, budget repair, fallbacks, audit log, resumable state) is
Agent-REINFORCE's, inherited unchanged.
"""

from __future__ import annotations

from typing import Any, ClassVar

from ttsgraph.errors import TtsGraphError
from ttsgraph.search.agent import AgentOptions
from ttsgraph.search.agent_init import combos_of
from ttsgraph.search.agent_reinforce import AgentReinforce, UpdateOptions
from ttsgraph.search.base import Proposal, SearchContext, register
from ttsgraph.search.space import SearchSpace


@register
class TextGrad(AgentReinforce):
    """`textgrad`: `UpdateOptions` (agent-reinforce's without the pretest); the context's profile
    and objective are not used (it always maximizes accuracy with the plain prompts)."""

    name = "textgrad"
    Options: ClassVar[type[AgentOptions]] = UpdateOptions
    initial_edge_prob: ClassVar[float] = 0.5
    stripped_prompt: ClassVar[bool] = True
    lenient_replies: ClassVar[bool] = True
    reads_profile: ClassVar[bool] = False

    def __init__(self, space: SearchSpace, *, seed: int = 0, iterations: int = 10, batch: int = 3,
                 context: SearchContext | None = None, **options: Any) -> None:
        super().__init__(space, seed=seed, iterations=iterations, batch=batch, context=context, **options)
        self.latency = False

    async def _ask_init(self) -> list[Proposal]:
        """A random mix from the combos (no agent, no pretest), then the initial random graph."""
        combos = combos_of(self.space, self.opts.budget_filling)
        if not combos:
            raise TtsGraphError("textgrad: the budget admits no model mix")
        counts = combos[int(self.rng.integers(len(combos)))]
        proposals = self._ask_initial(counts)
        assert self._pending is not None
        self._pending.picked, self._pending.variants = [counts], [counts]
        for p in proposals:
            p.meta["source"] = "random-mix"
        return proposals
