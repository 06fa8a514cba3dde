"""Running a request's graph: per-request sampling, n rollouts at once, cache only when seeded.

Two identical requests must get independent samples, yet a seeded request must be reproducible
(and may then come from the response cache). The executor's sample index does both: rollout r of
a request draws samples r·|nodes| + n. A seeded request's rollouts are fixed by its seed
(`seed · MAX_N + choice`; seed 0, choice 0 is rollout 0, the samples studies and `eval` use);
an unseeded one draws a random rollout and bypasses the cache, which would otherwise fill with
samples nobody can ask for again.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import secrets
from collections.abc import AsyncIterator, Callable
from typing import Any

from ttsgraph.config import Sampling
from ttsgraph.cost import unit_flops
from ttsgraph.executor import Executor, GraphRun
from ttsgraph.llm.base import Backend, BackendBase, Completion, Message, SamplingParams
from ttsgraph.llm.cache import CachedBackend
from ttsgraph.models import ModelPool
from ttsgraph.serve.errors import model_not_found, node_failed
from ttsgraph.serve.graphs import ServedGraph
from ttsgraph.serve.metrics import Metrics
from ttsgraph.serve.prompts import prompts_for
from ttsgraph.serve.protocol import MAX_N, ChatRequest

_USE_CACHE: contextvars.ContextVar[bool] = contextvars.ContextVar("ttsgraph_serve_use_cache", default=False)


class SeededCache(BackendBase):
    """Sends a seeded request's node calls through the response cache and an unseeded one's
    straight to the backend. Which one is a context variable set per request (the node tasks a
    request's graph creates inherit it), so one executor, with one set of per-backend
    concurrency limits, serves both."""

    def __init__(self, backend: Backend):
        self.cached = backend
        self.direct = backend.inner if isinstance(backend, CachedBackend) else backend

    def _pick(self) -> Backend:
        return self.cached if _USE_CACHE.get() else self.direct

    async def complete(self, model: str, messages: list[Message], params: SamplingParams,
                       sample: int = 0) -> Completion:
        return await self._pick().complete(model, messages, params, sample)

    async def stream(self, model: str, messages: list[Message], params: SamplingParams,
                     sample: int = 0) -> AsyncIterator[str | Completion]:
        async for event in self._pick().stream(model, messages, params, sample):
            yield event


def rollouts(request: ChatRequest) -> list[int]:
    """The rollout index of each of the request's n choices."""
    # Unseeded rollouts lie above every seeded one: a random request never repeats a seeded answer.
    base = (request.seed % 2**31) if request.seed is not None else 2**31 + secrets.randbelow(2**40)
    return [base * MAX_N + k for k in range(request.n)]


class GraphService:
    """The served graphs over one executor. `task` (or None: generic prompts) builds the prompts."""

    def __init__(self, executor: Executor, graphs: dict[str, ServedGraph], pool: ModelPool, task: Any | None,
                 lengths: Any, defaults: Sampling, metrics: Metrics):
        self.executor = executor
        self.graphs = graphs
        self.pool = pool
        self.task = task
        self.defaults = defaults
        self.metrics = metrics
        self.unit = unit_flops(pool, lengths)

    def graph(self, model: str) -> ServedGraph:
        served = self.graphs.get(model)
        if served is None:
            raise model_not_found(model, sorted(self.graphs))
        return served

    async def run(self, served: ServedGraph, request: ChatRequest, messages: list[Message],
                  on_piece: Callable[[int, str], None] | None = None) -> list[GraphRun]:
        """Run the graph once per choice, concurrently. `on_piece(choice, text)` streams each
        choice's output node. A failed node is a 502 naming it (after every choice has ended)."""
        prompts = prompts_for(messages, self.task)
        params = request.params(self.defaults)
        token = _USE_CACHE.set(request.seed is not None)
        try:
            runs = await asyncio.gather(*(
                self.executor.run(served.graph, prompts, params=params, rollout=r,
                                  on_output=functools.partial(on_piece, k) if on_piece is not None else None)
                for k, r in enumerate(rollouts(request))
            ))
        finally:
            _USE_CACHE.reset(token)
        for run in runs:
            self.metrics.graph_run(run)
        failed = next((run for run in runs if run.error is not None), None)
        if failed is not None:
            raise node_failed(failed.error or "unknown error")
        return list(runs)
