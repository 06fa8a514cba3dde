"""The fixed baselines a searched graph must beat at the same cost.

- each pool model alone (a one-node graph), when it fits the budget;
- budget-matched self-consistency: as many independent samples of one model as the budget pays
  for, answers extracted by the task and majority-voted (`ttsgraph.vote`; the vote is free: no
  extra LLM call). Samples 0..k-1, so sample 0 is the very call the one-node graph makes and the
  response cache shares it.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Sequence
from typing import Any

from ttsgraph.benchmark.results import BenchRow, mean
from ttsgraph.errors import TtsGraphError
from ttsgraph.evaluator import Evaluator, evaluate_one
from ttsgraph.executor import ItemResult, summarize
from ttsgraph.graph import Graph, single
from ttsgraph.llm.base import Backend, SamplingParams
from ttsgraph.models import ModelPool
from ttsgraph.search.space import SearchSpace
from ttsgraph.stats import wilson_interval
from ttsgraph.vote import majority_vote

Progress = Callable[[str, dict[str, Any]], None]
"""Callback `(event, info)`: "stage" (a study or baseline starts), "item" (one item scored),
"done" (a row finished). The CLI turns it into rich progress bars; tests may record it."""


def self_consistency_samples(space: SearchSpace, model: str) -> int:
    """How many independent calls of `model` (no predecessors) the budget pays for."""
    per_call = space.node_units(model, 0)
    return int(math.floor(space.budget.units / per_call + 1e-9)) if per_call > 0 else 0


async def run_self_consistency(backend: Backend, task: Any, model: str, k: int, items: Sequence[Any],
                               params: SamplingParams, concurrency: int = 2,
                               on_item: Callable[[], None] | None = None) -> list[dict[str, Any]]:
    """k samples of `model` answering each item alone, then a majority vote per item. An item
    errors only when every sample failed; the reason is kept."""
    gate = asyncio.Semaphore(concurrency)

    async def call(item: Any, s: int) -> tuple[str | None, str | None, bool, bool]:
        messages = task.messages(item, "assistant", [], True)
        async with gate:
            try:
                c = await backend.complete(model, messages, params, s)
            except TtsGraphError as exc:
                return None, getattr(exc, "reason", None) or str(exc), False, True
        return c.text, None, bool(c.cached), False

    async def one(item: Any) -> dict[str, Any]:
        t0 = time.perf_counter()
        outs = await asyncio.gather(*(call(item, s) for s in range(k)))
        texts = [o[0] for o in outs]
        errors = [o[1] for o in outs if o[1] is not None]
        row: dict[str, Any] = {"item_id": str(item.id), "calls": sum(1 for o in outs if not o[2] and not o[3]),
                               "cache_hits": sum(1 for o in outs if o[2]), "seconds": time.perf_counter() - t0}
        if len(errors) == k:
            row.update(correct=False, answer=None, votes=0, error=errors[0])
        else:
            ok, answer, votes = majority_vote(texts, task, item)
            row.update(correct=ok, answer=answer, votes=votes, error=None)
        if on_item is not None:
            on_item()
        return row

    return list(await asyncio.gather(*(one(item) for item in items)))  # in item order


async def run_baselines(backend: Backend, evaluator: Evaluator, task: Any, pool: ModelPool, space: SearchSpace,
                        items: Sequence[Any], params: SamplingParams, concurrency: int,
                        progress: Progress | None = None) -> list[BenchRow]:
    """One row per pool model alone (if it fits; a one-node graph run by the evaluator) and per
    model's budget-matched self-consistency (if the budget pays for at least two samples; its
    samples are asked of the backend directly: a vote is no graph)."""
    rows: list[BenchRow] = []
    emit = progress or (lambda event, info: None)
    for model in space.models:
        graph = single(model)
        if not space.fits(graph):
            continue
        emit("stage", {"name": f"single:{model}", "total": len(items)})
        t0 = time.perf_counter()
        results = await evaluate_one(evaluator, graph, items, params=params, on_result=lambda r: emit("item", {}))
        rows.append(_row_from_results(f"single:{model}", "single", graph, results, pool, task,
                                      time.perf_counter() - t0))
        emit("done", {"name": f"single:{model}"})
    for model in space.models:
        k = self_consistency_samples(space, model)
        if k < 2:
            continue
        name = f"sc:{model}x{k}"
        emit("stage", {"name": name, "total": len(items)})
        t0 = time.perf_counter()
        votes = await run_self_consistency(backend, task, model, k, items, params, concurrency,
                                           on_item=lambda: emit("item", {}))
        correct = [bool(v["correct"]) for v in votes]
        n_ok = sum(correct)
        rows.append(BenchRow(
            name=name, kind="self-consistency", seeds=1, search_accuracy=None, test_accuracy=mean(correct),
            test_ci=wilson_interval(n_ok, len(correct)), test_correct=n_ok, test_items=len(correct),
            test_errors=sum(1 for v in votes if v["error"]), planned_units=k * space.node_units(model, 0),
            evaluations=0, backend_calls=sum(v["calls"] for v in votes),
            cache_hits=sum(v["cache_hits"] for v in votes), eval_seconds=0.0,
            test_seconds=time.perf_counter() - t0, agent_seconds=0.0,
            graph={"self_consistency": {"model": model, "samples": k, "vote": "majority of extracted answers"}},
            per_item=[float(c) for c in correct]))
        emit("done", {"name": name})
    return rows


def _row_from_results(name: str, kind: str, graph: Graph, results: list[ItemResult], pool: ModelPool, task: Any,
                      seconds: float) -> BenchRow:
    s = summarize(results, graph, pool, task)
    return BenchRow(name=name, kind=kind, seeds=1, search_accuracy=None, test_accuracy=s.accuracy, test_ci=s.ci,
                    test_correct=s.correct, test_items=s.items, test_errors=s.errors, planned_units=s.planned_units,
                    evaluations=0, backend_calls=s.backend_calls, cache_hits=s.cache_hits, eval_seconds=0.0,
                    test_seconds=seconds, agent_seconds=0.0, graph=graph.to_dict(),
                    per_item=[float(r.correct) for r in results])
