"""A small real Agent-REINFORCE search on the embedded default: SmolLM2-135M as the agent, its
replies constrained by the JSON Schema (llama.cpp grammar), the two embedded models as workers."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from ttsgraph.cost import Budget
from ttsgraph.evaluator import LocalEvaluator
from ttsgraph.llm.base import SamplingParams
from ttsgraph.llm.router import build_backend
from ttsgraph.models import load_pool
from ttsgraph.search.agent_reinforce import AgentReinforce
from ttsgraph.search.base import SearchContext
from ttsgraph.store import RunStore
from ttsgraph.study import Study
from ttsgraph.tasks import load_task

pytestmark = pytest.mark.integration


def test_small_real_search_with_a_local_json_constrained_agent(tmp_path: Any) -> None:
    pool, task = load_pool("local"), load_task("arithmetic")
    space_budget = Budget.from_nodes(2, pool, task.lengths)
    from ttsgraph.search.space import SearchSpace

    space = SearchSpace(pool, task.lengths, space_budget)
    backend = build_backend(pool, tmp_path / "cache.sqlite")
    iterations, batch = 3, 2
    opt = AgentReinforce(space, seed=0, iterations=iterations, batch=batch,
                         context=SearchContext(backend=backend, task=task), agent="smollm2-135m", pretest_variants=1,
                         agent_max_tokens=400)
    store = RunStore.create(tmp_path / "run")

    async def main() -> Any:
        study = Study(store, task, pool, space, opt, LocalEvaluator(backend, pool, task), iterations=iterations,
                      batch=batch, test_limit=2, params=SamplingParams(max_tokens=32))
        async with backend:
            return await study.run()

    result = asyncio.run(main())
    trials = store.trials("search")
    assert result.evaluations >= iterations * batch
    phases = [t.meta["phase"] for t in trials]
    assert phases[0] == "pretest" and "initial" in phases and phases[-1] == "update"
    for t in trials:
        t.graph.validate(models=set(pool.models))
        assert space.fits(t.graph)
    log = store.agent_log()
    assert log[0]["kind"] == "init" and log[0]["meta"]["schema"] is True
    updates = [e for e in log if e["kind"].startswith("update")]
    assert updates, "the agent was never asked for an update"
    for e in log:
        if e["reply"] is not None:
            json.loads(e["reply"])  # the grammar makes every reply valid JSON
    last = trials[-1]
    assert last.meta["source"] in ("agent", "fallback-sample")
    if last.meta["source"] == "fallback-sample":
        assert last.meta["fallback"]  # the reason is recorded
    assert result.agent_seconds > 0 and result.test is not None and result.test.items == 2


def test_agent_behind_a_real_openai_compatible_server_honours_the_schema(llama_server: Any) -> None:
    """The OpenAI backend sends the schema as response_format; llama-cpp-python's server only takes
    the json_object form, so the backend downgrades once and the reply still follows the schema."""
    from ttsgraph.llm.openai_compat import Endpoint, OpenAICompatBackend
    from ttsgraph.search import agent_prompts as P
    from ttsgraph.search.agent import AgentClient
    from ttsgraph.search.agent_replies import parse_init_reply

    combos = [{"smollm2-135m": 3 - k, "gemma-3-270m": k} for k in range(4)]
    backend = OpenAICompatBackend({"smollm2-135m": Endpoint(llama_server.base_url, llama_server.alias)}, retries=1)
    client = AgentClient(backend, "smollm2-135m", SamplingParams(temperature=0.1, max_tokens=24))
    messages = [{"role": "system", "content": P.SYSTEM},
                {"role": "user", "content": P.init_prompt("arithmetic", combos, None)}]

    async def main() -> str:
        try:
            text, _ = await client.ask(messages, P.init_schema(len(combos)), kind="init")
            return text
        finally:
            await backend.aclose()

    text = asyncio.run(main())
    picks = parse_init_reply(text, combos)
    assert len(picks) == 2 and all(p in [{m: n for m, n in c.items() if n} for c in combos] for p in picks)
    assert client.drain()[0].schema is True
