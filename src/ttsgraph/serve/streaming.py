"""Server-sent events for `stream: true`: a role chunk, the output node's tokens as its backend
generates them, the finish chunk, the usage chunk when asked for, then `[DONE]`.

The HTTP status is only sent once the first token exists (or the graph has failed): the
predecessors run first, so a failing node or a timeout before the first token still gets its
proper 502/504 instead of a 200 with an error inside. Time to first token is then the
predecessors' critical path plus the output node's first token, not the whole graph.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from ttsgraph.executor import GraphRun
from ttsgraph.serve import responses
from ttsgraph.serve.errors import ApiError
from ttsgraph.serve.graphs import ServedGraph

_END = object()


def sse(obj: Any) -> bytes:
    return f"data: {json.dumps(obj, ensure_ascii=False, separators=(',', ':'))}\n\n".encode()


class GraphStream:
    """One streaming request: `start()` runs the graph and waits for its first token; `events()`
    then yields the SSE body; `status()` says how it ended (for the log line and metrics)."""

    def __init__(self, run: Callable[[Callable[[int, str], None]], Awaitable[list[GraphRun]]], *,
                 rid: str, created: int, graph: ServedGraph, n: int, max_tokens: int, include_usage: bool,
                 extension: Callable[[list[GraphRun], float | None], dict[str, Any]]):
        self._run = run
        self.rid, self.created, self.graph, self.n = rid, created, graph, n
        self.max_tokens, self.include_usage, self._extension = max_tokens, include_usage, extension
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._task: asyncio.Task[list[GraphRun]] | None = None
        self._started = [False] * n  # whether a choice has sent non-blank text (leading blanks are dropped)
        self.ttft: float | None = None

    def _piece(self, index: int, text: str) -> None:
        if not self._started[index]:
            text = text.lstrip()
            if not text:
                return
            self._started[index] = True
        self._queue.put_nowait((index, text))

    async def _main(self) -> list[GraphRun]:
        try:
            return await self._run(self._piece)
        finally:
            self._queue.put_nowait(_END)

    async def start(self, t0: float) -> Any:
        """Run the graph; the first event (a piece, or the end). Raises the graph's `ApiError` if it
        failed before its first token."""
        self._task = asyncio.create_task(self._main())
        first = await self._queue.get()
        if first is _END:
            self._task.result()  # raises ApiError (502/504) if the graph failed
        else:
            self.ttft = time.perf_counter() - t0
        return first

    def cancel(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()

    async def events(self, first: Any) -> AsyncIterator[bytes]:
        """The SSE body; on a failure after the first token, OpenAI's error object as an event."""
        assert self._task is not None
        c = self.include_usage
        yield sse(responses.chunk(self.rid, self.created, self.graph.id,
                                  [responses.delta(k, role="assistant", content="") for k in range(self.n)],
                                  with_usage=c))
        event = first
        while event is not _END:
            index, text = event
            yield sse(responses.chunk(self.rid, self.created, self.graph.id,
                                      [responses.delta(index, content=text)], with_usage=c))
            event = await self._queue.get()
        try:
            runs = self._task.result()
        except ApiError as exc:
            yield sse(exc.body())
            return
        ext = {"ttsgraph": self._extension(runs, self.ttft)}
        finish = [responses.delta(k, finish=responses.finish_reason(run, self.max_tokens, self.graph))
                  for k, run in enumerate(runs)]
        yield sse(responses.chunk(self.rid, self.created, self.graph.id, finish, with_usage=c,
                                  **({} if c else ext)))
        if c:
            yield sse({**responses.chunk(self.rid, self.created, self.graph.id, [], with_usage=False),
                       "usage": responses.usage(runs), **ext})
        yield b"data: [DONE]\n\n"

    def status(self) -> tuple[int, list[GraphRun] | None]:
        """200 and the runs if the graph finished; the error's status if it failed; 499 if it was
        cut short (the client left)."""
        task = self._task
        if task is None or not task.done() or task.cancelled():
            return 499, None
        exc = task.exception()
        if exc is not None:
            return (exc.status if isinstance(exc, ApiError) else 500), None
        return 200, task.result()
