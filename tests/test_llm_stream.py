"""Backend streaming: the default one-piece stream, the cache's stream (hit and miss), the router,
and the executor's streamed output node (same run as without streaming)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

from ttsgraph.cost import TaskLengths
from ttsgraph.executor import Executor
from ttsgraph.graph import parallel
from ttsgraph.llm.base import Completion, Message, SamplingParams
from ttsgraph.llm.cache import CachedBackend
from ttsgraph.llm.fake import ScriptedBackend
from ttsgraph.llm.router import RoutedBackend
from ttsgraph.models import load_pool

P = SamplingParams(max_tokens=32)
MSGS = [{"role": "user", "content": "hi"}]


class Words(ScriptedBackend):
    """Streams its scripted reply word by word and counts the streams it served."""

    streams = 0

    async def stream(self, model: str, messages: list[Message], params: SamplingParams,
                     sample: int = 0) -> AsyncIterator[str | Completion]:
        self.streams += 1
        done = await self.complete(model, messages, params, sample)
        for k, word in enumerate(done.text.split()):
            yield (" " if k else "") + word
        yield done


async def collect(agen: AsyncIterator[str | Completion]) -> tuple[list[str], Completion]:
    pieces, final = [], None
    async for event in agen:
        if isinstance(event, Completion):
            final = event
        else:
            pieces.append(event)
    assert final is not None
    return pieces, final


def test_default_stream_is_the_whole_reply_then_the_completion() -> None:
    backend = ScriptedBackend(lambda m, msgs, s: f"reply {s}")
    pieces, final = asyncio.run(collect(backend.stream("m", MSGS, P, 3)))
    assert pieces == ["reply 3"] and final.text == "reply 3"


def test_cache_stream_stores_what_complete_would_and_replays_it(tmp_path: Path) -> None:
    inner = Words(lambda m, msgs, s: f"one two three {s}")
    cache = CachedBackend(inner, tmp_path / "c.sqlite")

    async def main() -> None:
        pieces, final = await collect(cache.stream("m", MSGS, P, 1))
        assert pieces == ["one", " two", " three", " 1"] and not final.cached
        again = await cache.complete("m", MSGS, P, 1)  # the streamed miss filled the cache
        assert again.cached and (again.text, again.prompt_tokens, again.completion_tokens) == (
            final.text, final.prompt_tokens, final.completion_tokens)
        hit_pieces, hit = await collect(cache.stream("m", MSGS, P, 1))
        assert hit_pieces == [final.text] and hit.cached
        assert inner.streams == 1 and len(inner.calls) == 1
        await cache.aclose()

    asyncio.run(main())


def test_router_forwards_streams() -> None:
    inner = Words(lambda m, msgs, s: "a b")
    pieces, _ = asyncio.run(collect(RoutedBackend({"m": inner}).stream("m", MSGS, P)))
    assert pieces == ["a", " b"] and inner.streams == 1


def test_executor_streams_only_the_output_node_and_returns_the_same_run() -> None:
    pool = load_pool("local")
    task = type("T", (), {"name": "t", "lengths": TaskLengths(10, 10)})()
    graph = parallel(2, "smollm2-135m")

    def prompts(role: str, preds: list[str], is_output: bool) -> list[Message]:
        return [{"role": "user", "content": "final" if is_output else "worker"}]

    def reply(model: str, msgs: list[Message], sample: int) -> str:
        return f"{msgs[0]['content']} text {sample}"

    async def run(stream: bool) -> tuple[list[str], object, int]:
        backend = Words(reply)
        ex = Executor(backend, pool, task)  # type: ignore[arg-type]
        pieces: list[str] = []
        g = ex.prepare(graph)
        result = await ex.run(g, prompts, rollout=2, on_output=pieces.append if stream else None)
        return pieces, result, backend.streams

    pieces, streamed, n_streams = asyncio.run(run(True))
    _, plain, n_plain = asyncio.run(run(False))
    assert "".join(pieces) == streamed.output_text == plain.output_text  # type: ignore[attr-defined]
    assert len(pieces) == 3 and n_streams == 1 and n_plain == 0
    assert [(t.id, t.text, t.sample) for t in streamed.nodes] == [(t.id, t.text, t.sample) for t in plain.nodes]  # type: ignore[attr-defined]
