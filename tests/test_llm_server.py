"""The OpenAI-compatible backend and the executor against a real llama-cpp-python server on
127.0.0.1 (started by the fixtures in conftest.py): usage and seeds, parallel identical nodes get
sample indices 0 and 1, a rerun is served from the cache, and a server killed mid-run turns into
errors with reasons, not wrong answers (integration)."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import pytest

from ttsgraph.errors import BackendError
from ttsgraph.executor import Executor, ItemResult, summarize
from ttsgraph.graph import Graph, Node, parallel
from ttsgraph.llm.base import SamplingParams
from ttsgraph.llm.openai_compat import Endpoint, OpenAICompatBackend
from ttsgraph.llm.router import build_backend
from ttsgraph.models import load_pool
from ttsgraph.tasks import load_task

pytestmark = pytest.mark.integration

SMOL = "smollm2-135m"
Q = [{"role": "user", "content": "What is 3 + 4? Reply with 'Answer: ' and the number."}]


def test_server_completion_usage_and_seeded_repeat(llama_server) -> None:  # type: ignore[no-untyped-def]
    backend = OpenAICompatBackend({SMOL: Endpoint(llama_server.base_url, llama_server.alias)}, timeout=120)

    async def go() -> list:
        params = SamplingParams(max_tokens=12, temperature=0.8)
        out = [await backend.complete(SMOL, Q, params, s) for s in (0, 0, 1)]
        await backend.aclose()
        return out

    a, b, c = asyncio.run(go())
    assert a.text and a.prompt_tokens > 5 and 0 < a.completion_tokens <= 12
    assert a.text == b.text  # same request + sample → same seed → same text
    assert c.text  # another sample is still a valid answer


def test_parallel_identical_nodes_get_samples_0_and_1_and_rerun_is_cached(server_pool, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    task = load_task("arithmetic")
    items = task.items("search")[:2]
    g = parallel(2, SMOL, output_model=SMOL)
    params = SamplingParams(max_tokens=16)
    cache = tmp_path / "c.sqlite"

    def run() -> list[ItemResult]:
        ex = Executor(build_backend(server_pool, cache, retries=1), server_pool, task, params=params)
        return asyncio.run(ex.run_items(g, items))

    first = run()
    assert all(r.error is None for r in first), [r.error for r in first]
    for r in first:
        samples = {n.id: n.sample for n in r.nodes}
        assert sorted((samples["a1"], samples["a2"])) == [0, 1]
        assert all(not n.cached and n.prompt_tokens > 0 for n in r.nodes)
    s1 = summarize(first, g, server_pool, task)
    assert (s1.backend_calls, s1.cache_hits) == (6, 0)
    second = run()
    s2 = summarize(second, g, server_pool, task)
    assert (s2.backend_calls, s2.cache_hits) == (0, 6)
    assert [r.output_text for r in second] == [r.output_text for r in first]


def test_killed_server_gives_errors_with_reasons(llama_server_factory, bind_server) -> None:  # type: ignore[no-untyped-def]
    server = llama_server_factory()
    pool = bind_server(load_pool("local"), server)
    pool = replace(pool, models=[SMOL])
    task = load_task("arithmetic")
    items = task.items("search")[:5]
    g = Graph([Node("out", SMOL)], [], "out")
    backend = build_backend(pool, None, timeout=120, retries=1, backoff=0.05)  # refused connections fail fast
    ex = Executor(backend, pool, task, params=SamplingParams(max_tokens=8), concurrency=1, items_in_flight=1)
    done: list[ItemResult] = []

    def on_result(r: ItemResult) -> None:
        done.append(r)
        if len(done) == 2:
            server.kill()  # dies between calls, like a crashed server

    results = asyncio.run(ex.run_items(g, items, on_result=on_result))
    assert [r.error for r in results[:2]] == [None, None]
    failed = results[2:]
    assert all(r.error is not None for r in failed)
    for r in failed:
        assert "connection error" in r.error and "after 2 attempts" in r.error and "smollm2-135m" in r.error
        assert not r.correct and r.output_text is None and r.nodes[0].error
    s = summarize(results, g, pool, task)
    assert s.errors == 3 and s.wrong + s.correct == 2


def test_server_refuses_an_oversized_prompt_with_a_reason(llama_server) -> None:  # type: ignore[no-untyped-def]
    backend = OpenAICompatBackend({SMOL: Endpoint(llama_server.base_url, llama_server.alias)}, timeout=60, retries=0)
    huge = [{"role": "user", "content": "number " * 5000}]
    with pytest.raises(BackendError) as err:
        asyncio.run(backend.complete(SMOL, huge, SamplingParams(max_tokens=4)))
    assert "HTTP 4" in err.value.reason or "HTTP 5" in err.value.reason
