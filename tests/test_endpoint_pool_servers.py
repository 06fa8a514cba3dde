"""An endpoint pool over three real llama-cpp-python servers on 127.0.0.1 (SmolLM2): one is killed
mid-eval, every item still completes, and the dead server is reported as set aside (integration)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from ttsgraph.executor import Executor, ItemResult
from ttsgraph.graph import Graph, Node
from ttsgraph.llm.base import SamplingParams
from ttsgraph.llm.router import build_backend, endpoint_states
from ttsgraph.models import Binding, PoolEndpoint, load_pool, with_binding
from ttsgraph.tasks import load_task

pytestmark = pytest.mark.integration

MODEL = "smollm2-135m"


def test_killed_replica_loses_no_item(llama_server_factory, capsys) -> None:  # type: ignore[no-untyped-def]
    servers = [llama_server_factory(alias=MODEL, n_threads=1) for _ in range(3)]
    binding = Binding("openai", served_name=MODEL,
                      endpoints=tuple(PoolEndpoint(s.base_url, max_concurrency=1) for s in servers))
    pool = with_binding(load_pool("local"), MODEL, binding)
    task = load_task("arithmetic")
    items = task.items("search")[:10]
    backend = build_backend(pool, None, timeout=120, retries=2, backoff=5.0)
    executor = Executor(backend, pool, task, params=SamplingParams(max_tokens=8), concurrency=3)
    graph = Graph([Node("out", MODEL)], [], "out")
    victim = servers[1]
    done: list[ItemResult] = []
    seen: dict[str, Any] = {}

    def on_result(result: ItemResult) -> None:
        done.append(result)
        if len(done) == 3:  # mid-eval: calls are in flight on the other replicas, and on this one
            seen["before"] = {s["base_url"]: s["requests"] for s in endpoint_states(backend)[MODEL]}
            victim.kill()

    async def main() -> list[ItemResult]:
        async with backend:
            return await executor.run_items(graph, items, on_result=on_result)

    results = asyncio.run(main())
    assert not victim.alive()
    assert len(results) == len(items)
    assert [r.error for r in results] == [None] * len(items)
    assert all(r.output_text for r in results)
    states = {s["base_url"]: s for s in endpoint_states(backend)[MODEL]}
    dead = states[victim.base_url]
    # set aside, or its backoff over with no success since (a slow machine outlasts the backoff)
    assert dead["state"] in ("set aside", "retry due") and dead["errors"] >= 1 and dead["consecutive_failures"] >= 1
    assert "connection error" in dead["last_error"]
    # the survivors answered the rest (on a loaded machine a call may also time out on them: the
    # pool then set them aside for a while too, which is its job, so only their end state counts)
    assert any(states[s.base_url]["state"] == "healthy" for s in servers if s is not victim)
    # the survivors served the rest; the victim had its share before it died
    assert seen["before"][victim.base_url] >= 1
    assert sum(s["requests"] - s["errors"] for s in states.values()) == len(items)
    assert f"endpoint {victim.base_url} set aside" in capsys.readouterr().err
