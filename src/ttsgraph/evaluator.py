"""Where graph × item work runs: the seam between a study and the machines that answer.

A study (or bench, profile, eval) hands an `Evaluator` a batch of jobs — each a graph and the items
to score it on — and gets graded `ItemResult`s back in the same order. It never builds an executor
itself, so the same study runs in-process (`LocalEvaluator`, here) or spread over a cluster (a Ray
evaluator implements the same protocol) with identical per-item results: sampling is fixed by the
request and the sample index, not by where it runs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ttsgraph.executor import Executor, ItemResult, TaskLike
from ttsgraph.graph import Graph
from ttsgraph.llm.base import Backend, SamplingParams
from ttsgraph.models import ModelPool

OnResult = Callable[[int, ItemResult], None]
"""Called as each item finishes: (job index, result) — for progress displays and counters."""


@dataclass(frozen=True)
class Job:
    """Score `graph` on `items` with `params` (None: the evaluator's default sampling)."""

    graph: Graph
    items: Sequence[Any]
    params: SamplingParams | None = None


class Evaluator(Protocol):
    """Runs and grades jobs. Results come back per job, in item order, whatever the concurrency;
    a failed node errors its item (`ItemResult.error`), it never raises."""

    async def evaluate(self, jobs: Sequence[Job], on_result: OnResult | None = None) -> list[list[ItemResult]]: ...


class LocalEvaluator:
    """The in-process evaluator: one `Executor` over the runtime's backend, every job's items at
    once (bounded by the executor's `items_in_flight` per job and its per-backend semaphores)."""

    def __init__(self, backend: Backend, pool: ModelPool, task: TaskLike, *,
                 params: SamplingParams | None = None, concurrency: int = 4) -> None:
        self.executor = Executor(backend, pool, task, params or SamplingParams(), concurrency=concurrency)

    async def evaluate(self, jobs: Sequence[Job], on_result: OnResult | None = None) -> list[list[ItemResult]]:
        async def one(index: int, job: Job) -> list[ItemResult]:
            callback = (lambda r: on_result(index, r)) if on_result is not None else None
            return await self.executor.run_items(job.graph, job.items, callback, params=job.params)

        return list(await asyncio.gather(*(one(i, job) for i, job in enumerate(jobs))))


async def evaluate_one(evaluator: Evaluator, graph: Graph, items: Sequence[Any], *,
                       params: SamplingParams | None = None,
                       on_result: Callable[[ItemResult], None] | None = None) -> list[ItemResult]:
    """One graph on some items: the common case, without building a job list by hand."""
    callback = (lambda _i, r: on_result(r)) if on_result is not None else None
    return (await evaluator.evaluate([Job(graph, items, params)], callback))[0]


__all__ = ["Evaluator", "LocalEvaluator", "Job", "OnResult", "evaluate_one"]
