"""The paper's ablations as options of Agent-REINFORCE (`insights=false`, `init=random`,
`roles=assistant`, `pretest=false`): each switch must change what the agent is shown or what the
optimizer proposes, compared with the same run (same seed, same scripted agent) without it."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from tests.test_agent_reinforce import (
    Agent,
    chain_reply,
    local_setup,
    run_study,
    updates,
)
from ttsgraph.errors import TtsGraphError
from ttsgraph.evaluator import LocalEvaluator
from ttsgraph.llm.fake import ScriptedBackend
from ttsgraph.llm.router import build_backend
from ttsgraph.search import agent_prompts as P
from ttsgraph.search.agent_init import combos_of
from ttsgraph.search.agent_reinforce import AgentReinforce
from ttsgraph.search.base import SearchContext
from ttsgraph.store import RunStore
from ttsgraph.study import Study

UPDATE_INSIGHT = P.UPDATE_INSIGHTS[1]
INIT_INSIGHT = P.INIT_INSIGHTS[2]


def fuser_reply(form: dict[str, Any]) -> str:
    """The chain reply with its second worker a fuser of the first (valid under R2)."""
    data = json.loads(chain_reply(form))
    ids = [i for i in data["graph"] if i != "out"]
    data["graph"][ids[1]]["role"] = "fuser"
    return json.dumps(data)


def test_insights_false_drops_the_pilot_findings_but_keeps_the_data(tmp_path: Any) -> None:
    full, ablated = Agent([]), Agent([])
    run_study(tmp_path, full, name="full", iterations=5)
    run_study(tmp_path, ablated, name="ablated", iterations=5, insights=False)
    init_full, init_ablated = full.calls[0][-1]["content"], ablated.calls[0][-1]["content"]
    assert INIT_INSIGHT in init_full and "What pilot studies found" in init_full
    assert INIT_INSIGHT not in init_ablated and "What pilot studies found" not in init_ablated
    assert "Data:" in init_ablated and "Options (index" in init_ablated
    update_full, update_ablated = full.calls[1][-1]["content"], ablated.calls[1][-1]["content"]
    assert UPDATE_INSIGHT in update_full
    assert UPDATE_INSIGHT not in update_ablated and "What pilot studies found" not in update_ablated
    assert "Rules:" in update_ablated  # the rules are not insights: they stay


def test_init_random_asks_no_agent_and_starts_from_budget_filling_mixes(tmp_path: Any) -> None:
    setup = local_setup()
    combos, filling = combos_of(setup[2]), combos_of(setup[2], True)
    init = '{"picks": [5, 7]}'  # two under-filled mixes: what this agent picks when asked
    agent = Agent([], init=init)
    _, store, opt = run_study(tmp_path, agent, setup=setup, init="random")
    assert all("Options (index" not in c[-1]["content"] for c in agent.calls)  # no init prompt
    assert len(opt.state.picked) == 2 and all(p in filling for p in opt.state.picked)
    pretest = [t for t in store.trials("search") if t.meta["phase"] == "pretest"]
    assert pretest and all(t.meta["source"] == "random-init" for t in pretest)
    agent_run = Agent([], init=init)
    _, _, agent_opt = run_study(tmp_path, agent_run, setup=setup, name="agent")
    assert "Options (index" in agent_run.calls[0][-1]["content"]
    assert agent_opt.state.picked == [combos[5], combos[7]]
    assert not any(p in filling for p in agent_opt.state.picked)


def test_roles_assistant_changes_the_rules_schema_and_every_proposal(tmp_path: Any) -> None:
    full, ablated = Agent([fuser_reply], then=fuser_reply), Agent([fuser_reply], then=fuser_reply)
    _, full_store, _ = run_study(tmp_path, full, name="full", pretest=False)
    _, ablated_store, _ = run_study(tmp_path, ablated, name="ablated", pretest=False, roles="assistant")
    assert any(n.role == "fuser" for t in updates(full_store) for n in t.graph.nodes)  # the reply, as written
    assert all(n.role == "assistant" for t in ablated_store.trials("search") for n in t.graph.nodes)
    prompt_full, prompt_ablated = full.calls[1][-1]["content"], ablated.calls[1][-1]["content"]
    assert "'fuser' (reviews" in prompt_full and "fuser" not in prompt_ablated.split("Goal:")[0]
    assert "Every node is an 'assistant'" in prompt_ablated


@pytest.mark.parametrize("roles, offered", [("mixed", True), ("assistant", False)])
def test_roles_assistant_offers_no_fuser_in_the_update_schema(tmp_path: Any, roles: str, offered: bool) -> None:
    pool, task, space = local_setup()
    fake = ScriptedBackend(Agent([]))
    backend = build_backend(pool, None, fake=fake)
    opt = AgentReinforce(space, seed=0, iterations=4, batch=2, context=SearchContext(backend=backend, task=task),
                         agent=pool.output, pretest=False, roles=roles)
    with RunStore.create(tmp_path / roles) as store:
        study = Study(store, task, pool, space, opt, LocalEvaluator(backend, pool, task), iterations=4, batch=2,
                      test_limit=0)
        asyncio.run(study.run())
    schemas = [c.params.json_schema for c in fake.calls if c.messages[0]["content"] == P.SYSTEM
               and "Rules:" in c.messages[-1]["content"]]
    assert schemas and all(('"fuser"' in s) is offered for s in schemas)


def test_pretest_false_scores_the_first_pick_directly(tmp_path: Any) -> None:
    _, with_store, _ = run_study(tmp_path, Agent([]), name="with")
    _, without_store, _ = run_study(tmp_path, Agent([]), name="without", pretest=False)
    with_phases = [t.meta["phase"] for t in with_store.trials("search")]
    without_phases = [t.meta["phase"] for t in without_store.trials("search")]
    assert "pretest" in with_phases and "pretest" not in without_phases
    assert without_phases[0] == "initial"
    assert without_store.trials("search")[0].meta["counts"] == {"smollm2-135m": 1, "gemma-3-270m": 2}  # pick 1


@pytest.mark.parametrize("key, value", [("init", "agents"), ("roles", "fusers"), ("insights", "maybe")])
def test_a_bad_ablation_value_is_a_one_line_error(key: str, value: str) -> None:
    _, task, space = local_setup()
    with pytest.raises(TtsGraphError, match=rf"option '{key}'"):
        AgentReinforce(space, context=SearchContext(backend=ScriptedBackend(Agent([])), task=task), **{key: value})
