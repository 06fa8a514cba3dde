"""Running a bench: every optimizer × seed as an ordinary study, then everything on the same test items.

Same space, same evaluation budget (iterations × batch), same search-item stream per seed, one
shared response cache and one run directory each (an existing one is resumed), so a rerun of a
finished bench makes no new worker call.
"""

from __future__ import annotations

import json
import time
from typing import Any

from ttsgraph import selection
from ttsgraph.benchmark.baselines import Progress, run_baselines
from ttsgraph.benchmark.config import (
    BenchConfig,
    check_config,
    optimizer_options,
    run_dir_for,
    split_row,
    uses_agent,
)
from ttsgraph.benchmark.results import (
    BENCH_FILE,
    BenchResult,
    BenchRow,
    RunOutcome,
    aggregate,
    compare,
    reply_outcomes,
)
from ttsgraph.errors import TtsGraphError
from ttsgraph.evaluator import evaluate_one
from ttsgraph.executor import summarize
from ttsgraph.graph import Graph
from ttsgraph.jsonutil import to_jsonable
from ttsgraph.llm.base import Backend
from ttsgraph.runtime import Runtime, build_runtime
from ttsgraph.search.space import SearchSpace


async def run_bench(config: BenchConfig, *, fake_backend: Backend | None = None,
                    progress: Progress | None = None) -> BenchResult:
    """Run the whole bench; `fake_backend` (unit tests only) replaces every model binding."""
    from ttsgraph.search.agent_reinforce import default_agent

    started = time.perf_counter()
    check_config(config)
    emit = progress or (lambda event, info: None)
    async with build_runtime(config.run_config(), fake_backend=fake_backend) as rt:
        task, pool, params = rt.task, rt.pool, rt.params
        space = rt.space()
        agent_model = config.agent or default_agent(pool)  # what `ttsgraph search` uses too
        if uses_agent(config):
            pool.spec(agent_model)  # an unknown agent model fails here, not after an hour of search
        test_items = task.items("test")[: config.test_limit] if config.test_limit else task.items("test")
        if not test_items:
            raise TtsGraphError(f"task {task.name} has no test items")
        config.out.mkdir(parents=True, exist_ok=True)
        rows: list[BenchRow] = []
        if config.baselines:
            rows += await run_baselines(rt.backend, rt.evaluator, task, pool, space, test_items, params,
                                        config.concurrency, emit)
        for name, row, classical in config.rows():
            runs = []
            for seed in range(config.seeds):
                emit("stage", {"name": f"{name} seed {seed}", "total": config.iterations * config.batch + len(test_items)})
                run = await run_study(config, rt, space, (name, row, classical), seed, agent_model, emit)
                t0 = time.perf_counter()
                graph = Graph.from_dict(run.graph)
                results = await evaluate_one(rt.evaluator, graph, test_items, params=params,
                                             on_result=lambda r: emit("item", {}))
                summary = summarize(results, graph, pool, task)
                run.test_correct = [bool(r.correct) for r in results]
                run.test_errors = summary.errors
                run.test_seconds = time.perf_counter() - t0
                run.backend_calls += summary.backend_calls
                run.cache_hits += summary.cache_hits
                runs.append(run)
                emit("done", {"name": f"{name} seed {seed}"})
            rows.append(aggregate(name, runs))
        best, comparisons = compare(rows)
        result = BenchResult(config.to_dict() | {"budget_units": space.budget.units, "node_budget": space.node_budget,
                                                 "pool": pool.name, "agent_model": agent_model},
                             rows, comparisons, best, [str(i.id) for i in test_items])
        result.draw_curves(config.out)
        result.seconds = time.perf_counter() - started
        (config.out / BENCH_FILE).write_text(json.dumps(result.to_dict(), indent=2, default=to_jsonable))
    return result


async def run_study(config: BenchConfig, rt: Runtime, space: SearchSpace, row: tuple[str, str, bool], seed: int,
                    agent_model: str, emit: Progress) -> RunOutcome:
    """One row (an optimizer with its row options, with or without the classical candidates:
    `BenchConfig.rows`) × seed as an ordinary study in its own run directory (resumed if it exists)."""
    from ttsgraph.store import RunStore
    from ttsgraph.study import Study

    name, optimizer_row, classical = row
    run_dir = run_dir_for(config.out, name, seed)
    resume = (run_dir / "run.sqlite").exists()
    store = RunStore.open(run_dir) if resume else RunStore.create(run_dir)
    with store:
        if not resume:
            store.set_config("bench", {"optimizer": name, "seed": seed, **config.to_dict()})
        optimizer = rt.optimizer(space, name=split_row(optimizer_row)[0],
                                 options=optimizer_options(optimizer_row, config, agent_model), seed=seed)
        study = Study.from_runtime(rt, store, optimizer=optimizer, space=space, seed=seed,
                                   config=config.run_config(classical))

        def on_event(event: dict[str, Any]) -> None:
            if event.get("kind") == "item":
                emit("item", event)

        result = await study.run(progress=on_event)
        curve = [(p.evaluations, p.accuracy) for p in selection.best_so_far(store.trials())]
        replies = reply_outcomes(t.meta for t in store.trials("search"))
    return RunOutcome(
        optimizer=name, seed=seed, run_dir=str(run_dir), graph=result.best.graph.to_dict(),
        search_accuracy=float(result.search_accuracy), test_correct=[], test_errors=0,
        planned_units=float(result.best.planned_units), evaluations=int(result.evaluations),
        backend_calls=int(result.backend_calls), cache_hits=int(result.cache_hits),
        eval_seconds=float(result.eval_seconds), test_seconds=0.0, agent_seconds=float(result.agent_seconds),
        curve=curve, agent_replies=replies)
