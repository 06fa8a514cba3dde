"""`ttsgraph bench`: several optimizers and fixed baselines, side by side, on equal terms.

A searched graph is only worth its search if it beats what needs no search at the same cost.
So a bench runs every optimizer × seed as an ordinary study (same space, same evaluation budget
iterations × batch, same search-item stream per seed, one shared response cache, one run
directory each), then scores every selected graph on the *same* held-out test items, next to
fixed baselines spending the same budget:

- each pool model alone (a one-node graph), when it fits the budget;
- budget-matched self-consistency: as many independent samples of one model as the budget pays
  for, answers extracted by the task and majority-voted (the vote is free: no extra LLM call).

Because every row is scored on the same test items, each optimizer is compared with the best
baseline item by item (paired difference with a t interval): pairing removes the per-item
difficulty noise that would swamp a comparison of two accuracies on a few dozen items.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ttsgraph.cost import Budget
from ttsgraph.errors import BudgetError, TtsGraphError
from ttsgraph.executor import Executor, ItemResult, summarize
from ttsgraph.graph import Graph, single
from ttsgraph.llm.base import Backend, SamplingParams
from ttsgraph.models import ModelPool
from ttsgraph.search.space import SearchSpace
from ttsgraph.stats import paired_difference_ci, wilson_interval

DEFAULT_OPTIMIZERS = ("agent-reinforce", "tpe", "random", "reinforce", "textgrad", "hybrid")
AGENT_OPTIMIZERS = frozenset({"agent-reinforce", "textgrad", "hybrid"})

Progress = Callable[[str, dict[str, Any]], None]
"""Callback `(event, info)`: "stage" (a study or baseline starts), "item" (one item scored),
"done" (a row finished). The CLI turns it into rich progress bars; tests may record it."""


# ---------------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------------

@dataclass
class RunOutcome:
    """One optimizer × seed: its study's figures and its selected graph on the test items."""

    optimizer: str
    seed: int
    run_dir: str
    graph: dict[str, Any]
    search_accuracy: float
    test_correct: list[bool]
    test_errors: int
    planned_units: float
    evaluations: int
    backend_calls: int
    cache_hits: int
    eval_seconds: float
    test_seconds: float
    agent_seconds: float
    curve: list[tuple[int, float]]  # (evaluations so far, best accuracy so far)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["test_accuracy"] = _mean(self.test_correct)
        d["curve"] = [list(p) for p in self.curve]
        return d


@dataclass
class BenchRow:
    """One line of the table: an optimizer (aggregated over seeds) or a fixed baseline."""

    name: str
    kind: str  # "optimizer" | "single" | "self-consistency"
    seeds: int
    search_accuracy: float | None
    test_accuracy: float
    test_ci: tuple[float, float]
    test_correct: int
    test_items: int
    test_errors: int
    planned_units: float
    evaluations: float
    backend_calls: int
    cache_hits: int
    eval_seconds: float
    test_seconds: float
    agent_seconds: float
    graph: dict[str, Any] | None = None
    per_item: list[float] = field(default_factory=list)  # mean correctness per test item (over seeds)
    runs: list[RunOutcome] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in ("name", "kind", "seeds", "search_accuracy", "test_accuracy", "test_correct",
                                           "test_items", "test_errors", "planned_units", "evaluations",
                                           "backend_calls", "cache_hits", "eval_seconds", "test_seconds",
                                           "agent_seconds", "graph", "per_item")}
        d["test_ci"] = list(self.test_ci)
        d["runs"] = [r.to_dict() for r in self.runs]
        return d


@dataclass
class Comparison:
    """Optimizer minus baseline, paired over the same test items (mean of per-seed correctness)."""

    name: str
    against: str
    difference: float
    low: float
    high: float
    items: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class BenchResult:
    config: dict[str, Any]
    rows: list[BenchRow]
    comparisons: list[Comparison]
    best_baseline: str | None
    test_item_ids: list[str]
    plot: str | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"config": self.config, "rows": [r.to_dict() for r in self.rows],
                "comparisons": [c.to_dict() for c in self.comparisons], "best_baseline": self.best_baseline,
                "test_item_ids": self.test_item_ids, "plot": self.plot, "seconds": self.seconds}


def load_result(out: Path) -> BenchResult:
    """A finished bench read back from `OUT/bench.json` (for `ttsgraph bench --show`)."""
    from ttsgraph.errors import FileFormatError

    path = Path(out) / "bench.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        rows = []
        for r in data["rows"]:
            r = dict(r)
            runs = [RunOutcome(**{k: v for k, v in o.items() if k != "test_accuracy"}
                               | {"curve": [tuple(p) for p in o.get("curve", [])]}) for o in r.pop("runs", [])]
            r["test_ci"] = tuple(r["test_ci"])
            rows.append(BenchRow(**r, runs=runs))
        comparisons = [Comparison(**c) for c in data.get("comparisons", [])]
        return BenchResult(data["config"], rows, comparisons, data.get("best_baseline"), data.get("test_item_ids", []),
                           data.get("plot"), float(data.get("seconds", 0.0)))
    except FileNotFoundError:
        raise FileFormatError("no bench.json here: not a finished bench directory", path=str(path)) from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise FileFormatError(f"cannot read the bench summary: {exc}", path=str(path)) from None


def _mean(xs: Sequence[float | bool]) -> float:
    return sum(float(x) for x in xs) / len(xs) if xs else 0.0


# ---------------------------------------------------------------------------------------------
# Fixed baselines
# ---------------------------------------------------------------------------------------------

def self_consistency_samples(space: SearchSpace, model: str) -> int:
    """How many independent calls of `model` (no predecessors) the budget pays for."""
    per_call = space.node_units(model, 0)
    return int(math.floor(space.budget.units / per_call + 1e-9)) if per_call > 0 else 0


def majority_vote(texts: Sequence[str | None], task: Any, item: Any) -> tuple[bool, str | None, int]:
    """Majority vote over sampled answers: (correct, winning answer, votes for it).

    Each text is graded by the task (its extractor finds the answer; its grader judges it);
    answers are grouped by the extracted string, ties go to the answer seen first. Texts with no
    extractable answer do not vote; if none votes the item is wrong, with no answer.
    """
    votes: Counter[str] = Counter()
    first: dict[str, int] = {}
    verdict: dict[str, bool] = {}
    for k, text in enumerate(texts):
        if text is None:
            continue
        grade = task.grade(item, text)
        if grade.extracted is None:
            continue
        key = grade.extracted.strip()
        votes[key] += 1
        first.setdefault(key, k)
        verdict.setdefault(key, bool(grade.correct))
    if not votes:
        return False, None, 0
    winner = max(votes, key=lambda a: (votes[a], -first[a]))
    return verdict[winner], winner, votes[winner]


async def run_self_consistency(backend: Backend, task: Any, model: str, k: int, items: Sequence[Any],
                               params: SamplingParams, concurrency: int = 2,
                               on_item: Callable[[], None] | None = None) -> list[dict[str, Any]]:
    """k samples of `model` answering each item alone (sample indices 0..k-1, so sample 0 is the
    very call a one-node graph makes and the cache shares it), then a majority vote per item.
    An item errors only when every sample failed; the reason is kept."""
    from ttsgraph.errors import TtsGraphError as _Err

    gate = asyncio.Semaphore(concurrency)

    async def call(item: Any, s: int) -> tuple[str | None, str | None, bool, bool]:
        messages = task.messages(item, "assistant", [], True)
        async with gate:
            try:
                c = await backend.complete(model, messages, params, s)
            except _Err as exc:
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


async def run_baselines(backend: Backend, task: Any, pool: ModelPool, space: SearchSpace, items: Sequence[Any],
                        params: SamplingParams, concurrency: int, progress: Progress | None = None) -> list[BenchRow]:
    """One row per pool model alone (if it fits) and per model's budget-matched self-consistency
    (if the budget pays for at least two samples)."""
    rows: list[BenchRow] = []
    executor = Executor(backend, pool, task, params=params, concurrency=concurrency)
    emit = progress or (lambda event, info: None)
    for model in space.models:
        graph = single(model)
        if not space.fits(graph):
            continue
        emit("stage", {"name": f"single:{model}", "total": len(items)})
        t0 = time.perf_counter()
        results = await executor.run_items(graph, items, on_result=lambda r: emit("item", {}))
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
            name=name, kind="self-consistency", seeds=1, search_accuracy=None, test_accuracy=_mean(correct),
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


# ---------------------------------------------------------------------------------------------
# Aggregation, comparisons, curves
# ---------------------------------------------------------------------------------------------

def best_so_far_curve(trials: Sequence[tuple[int, float]]) -> list[tuple[int, float]]:
    """From (items scored by the trial, trial accuracy) in trial order to (evaluations so far,
    best accuracy so far) — the x axis counts evaluations, which is what every optimizer spends."""
    out: list[tuple[int, float]] = []
    spent, best = 0, -math.inf
    for n, acc in trials:
        spent += int(n)
        best = max(best, float(acc))
        out.append((spent, best))
    return out


def aggregate(name: str, runs: list[RunOutcome]) -> BenchRow:
    """One row over seeds: means of the search figures, test accuracy pooled over seeds (Wilson
    interval on all seed × item outcomes), sums of calls and seconds."""
    pooled = [c for r in runs for c in r.test_correct]
    n_items = len(runs[0].test_correct) if runs else 0
    per_item = [_mean([r.test_correct[i] for r in runs]) for i in range(n_items)]
    k = sum(pooled)
    graph = runs[0].graph if len({json.dumps(r.graph, sort_keys=True) for r in runs}) == 1 else None
    return BenchRow(
        name=name, kind="optimizer", seeds=len(runs), search_accuracy=_mean([r.search_accuracy for r in runs]),
        test_accuracy=_mean(pooled), test_ci=wilson_interval(k, len(pooled)), test_correct=k, test_items=len(pooled),
        test_errors=sum(r.test_errors for r in runs), planned_units=_mean([r.planned_units for r in runs]),
        evaluations=_mean([r.evaluations for r in runs]), backend_calls=sum(r.backend_calls for r in runs),
        cache_hits=sum(r.cache_hits for r in runs), eval_seconds=sum(r.eval_seconds for r in runs),
        test_seconds=sum(r.test_seconds for r in runs), agent_seconds=sum(r.agent_seconds for r in runs),
        graph=graph, per_item=per_item, runs=runs)


def compare(rows: Sequence[BenchRow]) -> tuple[str | None, list[Comparison]]:
    """Each optimizer against the best baseline (highest test accuracy; ties: fewer units),
    paired over the test items."""
    baselines = [r for r in rows if r.kind != "optimizer" and r.per_item]
    if not baselines:
        return None, []
    best = max(baselines, key=lambda r: (r.test_accuracy, -r.planned_units))
    out = []
    for r in rows:
        if r.kind != "optimizer" or len(r.per_item) != len(best.per_item) or not r.per_item:
            continue
        d = paired_difference_ci(r.per_item, best.per_item)
        # a difference of two accuracies lies in [-1, 1]; the t interval on a few items does not know
        out.append(Comparison(r.name, best.name, d.mean, max(-1.0, d.low), min(1.0, d.high), d.n))
    return best.name, out


def plot_curves(curves: dict[str, list[list[tuple[int, float]]]], path: Path, title: str = "") -> Path:
    """Best-so-far search accuracy against evaluations: one panel per optimizer (shared axes, so
    optimizers whose curves coincide stay readable) with the mean over seeds as a thick step line,
    the min–max band across seeds, each seed as a thin line, and the other optimizers' means in grey."""
    from matplotlib.figure import Figure

    from ttsgraph.plots import colours, png_bytes

    names = [n for n in sorted(curves) if any(curves[n])]
    cols = min(3, max(1, len(names)))
    rows = max(1, math.ceil(len(names) / cols))
    fig = Figure(figsize=(3.3 * cols, 2.6 * rows + 0.5))
    cmap = colours(list(curves))

    def at(c: list[tuple[int, float]], x: int) -> float:
        vals = [a for e, a in c if e <= x]
        return max(vals) if vals else math.nan

    summary: dict[str, tuple[list[int], list[float], list[float], list[float]]] = {}
    for name in names:
        runs = [c for c in curves[name] if c]
        grid = sorted({x for c in runs for x, _ in c})
        values = [[v for v in (at(c, x) for c in runs) if not math.isnan(v)] for x in grid]
        summary[name] = (grid, [_mean(v) if v else math.nan for v in values],
                         [min(v, default=math.nan) for v in values], [max(v, default=math.nan) for v in values])
    if not names:
        ax = fig.add_subplot()
        ax.text(0.5, 0.5, "no trials", ha="center", va="center", transform=ax.transAxes)
    axes = fig.subplots(rows, cols, sharex=True, sharey=True, squeeze=False) if names else [[]]
    for k, name in enumerate(names):
        ax = axes[k // cols][k % cols]
        for other in names:
            if other != name:
                g, m, _, _ = summary[other]
                ax.step(g, m, where="post", color="0.75", lw=1)
        grid, mean, lo, hi = summary[name]
        c = cmap[name]
        runs = [r for r in curves[name] if r]
        if len(runs) > 1:
            ax.fill_between(grid, lo, hi, step="post", color=c, alpha=0.2, lw=0)
            for r in runs:
                ax.step([x for x, _ in r], [a for _, a in r], where="post", color=c, lw=0.8, alpha=0.6)
        ax.step(grid, mean, where="post", color=c, lw=2.4)
        ax.set_title(f"{name} ({len(runs)} seed{'s' * (len(runs) > 1)})", fontsize=9)
        ax.set_ylim(-0.03, 1.03)
        ax.grid(alpha=0.3)
        if k % cols == 0:
            ax.set_ylabel("best search acc.", fontsize=8)
        if k // cols == rows - 1:
            ax.set_xlabel("evaluations", fontsize=8)
    for k in range(len(names), rows * cols):
        axes[k // cols][k % cols].set_visible(False)
    fig.suptitle(title or "best-so-far search accuracy (mean over seeds, band = min–max)", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png_bytes(fig))
    return path


# ---------------------------------------------------------------------------------------------
# The runner
# ---------------------------------------------------------------------------------------------

@dataclass
class BenchConfig:
    """Everything a bench run depends on (stored in `bench.json` next to the run directories)."""

    task: str = "arithmetic"
    task_options: dict[str, Any] = field(default_factory=dict)
    models: str | None = None  # pool name or models.toml; None = the embedded local pool
    budget: float | None = None  # units
    budget_nodes: int | None = None  # node budget b (SPEC §2.3)
    optimizers: tuple[str, ...] = DEFAULT_OPTIMIZERS
    seeds: int = 3
    iterations: int = 4
    batch: int = 2
    agent: str | None = None  # agent model of LLM-driven optimizers; default: the pool's largest chat model
    test_limit: int | None = 20
    out: Path = Path("bench-out")
    cache: Path | None = None  # None = no cache (tests); the CLI passes the shared default
    concurrency: int = 2
    max_tokens: int = 64
    temperature: float = 0.1
    agent_max_tokens: int = 768
    baselines: bool = True
    select: str = "best"
    optimizer_options: dict[str, dict[str, Any]] = field(default_factory=dict)  # per optimizer name; "*" = all

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["optimizers"] = list(self.optimizers)
        d["out"] = str(self.out)
        d["cache"] = str(self.cache) if self.cache is not None else None
        return d


def make_budget(config: BenchConfig, pool: ModelPool, lengths: Any) -> Budget:
    if config.budget is not None and config.budget_nodes is not None:
        raise BudgetError("give either --budget or --budget-nodes, not both")
    if config.budget_nodes is not None:
        return Budget.from_nodes(config.budget_nodes, pool, lengths)
    if config.budget is not None:
        return Budget(config.budget)
    return Budget.from_nodes(3, pool, lengths)


def check_config(config: BenchConfig) -> None:
    """Reject a bad configuration before anything runs (names the bad value)."""
    from ttsgraph.search.base import get_optimizer

    if not config.optimizers:
        raise TtsGraphError("no optimizer to bench: pass --optimizers")
    dup = [n for n, k in Counter(config.optimizers).items() if k > 1]
    if dup:
        raise TtsGraphError(f"optimizer {dup[0]!r} is listed twice")
    for name in config.optimizers:
        get_optimizer(name)  # raises naming the unknown one and the known ones
    for name in config.optimizer_options:
        if name != "*" and name not in config.optimizers:
            raise TtsGraphError(f"optimizer options given for {name!r}, which is not among --optimizers")
    for key in ("seeds", "iterations", "batch", "concurrency", "max_tokens"):
        if getattr(config, key) < 1:
            raise TtsGraphError(f"--{key.replace('_', '-')} must be >= 1, got {getattr(config, key)}")
    if config.test_limit is not None and config.test_limit < 1:
        raise TtsGraphError(f"--test-limit must be >= 1, got {config.test_limit}")


def run_dir_for(out: Path, optimizer: str, seed: int) -> Path:
    return out / "runs" / f"{optimizer}-seed{seed}"


async def run_bench(config: BenchConfig, *, fake_backend: Backend | None = None,
                    progress: Progress | None = None) -> BenchResult:
    """Run the whole bench; `fake_backend` (unit tests only) replaces every model binding."""
    from ttsgraph.llm.router import build_backend, check_bindings
    from ttsgraph.models import load_pool
    from ttsgraph.tasks import load_task

    started = time.perf_counter()
    check_config(config)
    task = load_task(config.task, **config.task_options)
    pool = load_pool(config.models)
    budget = make_budget(config, pool, task.lengths)
    space = SearchSpace(pool, task.lengths, budget, temperature=config.temperature)
    from ttsgraph.search.agent_reinforce import default_agent

    agent_model = config.agent or default_agent(pool)  # what `ttsgraph search` uses too
    if any(n in AGENT_OPTIMIZERS for n in config.optimizers):
        pool.spec(agent_model)  # an unknown agent model fails here, not after an hour of search
    if fake_backend is None:
        check_bindings(pool)
    backend = build_backend(pool, config.cache, fake=fake_backend)
    params = SamplingParams(temperature=config.temperature, max_tokens=config.max_tokens)
    test_items = task.items("test")[: config.test_limit] if config.test_limit else task.items("test")
    if not test_items:
        raise TtsGraphError(f"task {task.name} has no test items")
    config.out.mkdir(parents=True, exist_ok=True)
    emit = progress or (lambda event, info: None)

    try:
        rows: list[BenchRow] = []
        if config.baselines:
            rows += await run_baselines(backend, task, pool, space, test_items, params, config.concurrency, emit)
        executor = Executor(backend, pool, task, params=params, concurrency=config.concurrency)
        for name in config.optimizers:
            runs = []
            for seed in range(config.seeds):
                emit("stage", {"name": f"{name} seed {seed}", "total": config.iterations * config.batch + len(test_items)})
                run = await run_study(config, name, seed, task, pool, space, backend, params, agent_model, emit)
                t0 = time.perf_counter()
                graph = Graph.from_dict(run.graph)
                results = await executor.run_items(graph, test_items, on_result=lambda r: emit("item", {}))
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
        curves = {r.name: [run.curve for run in r.runs] for r in rows if r.kind == "optimizer"}
        plot = plot_curves(curves, config.out / "bench_curves.png",
                           f"{task.name}, budget {budget.units:.2f} units: best-so-far search accuracy "
                           f"(mean over {config.seeds} seeds, band = min–max)")
        result = BenchResult(config.to_dict() | {"budget_units": budget.units, "node_budget": space.node_budget,
                                                 "pool": pool.name, "agent_model": agent_model},
                             rows, comparisons, best, [str(i.id) for i in test_items], str(plot),
                             time.perf_counter() - started)
        (config.out / "bench.json").write_text(json.dumps(result.to_dict(), indent=2, default=str))
    finally:
        aclose = getattr(backend, "aclose", None)  # the cache file and any HTTP clients
        if callable(aclose):
            await aclose()
    return result


def optimizer_options(name: str, backend: Backend, agent_model: str, config: BenchConfig, task: Any) -> dict[str, Any]:
    """Constructor options of one optimizer: LLM-driven ones talk to `agent_model` through the
    bench's backend (and its cache), about `task`."""
    extra = {**config.optimizer_options.get("*", {}), **config.optimizer_options.get(name, {})}
    if name not in AGENT_OPTIMIZERS:
        return extra
    return {"backend": backend, "agent": agent_model, "task": task, "agent_max_tokens": config.agent_max_tokens,
            **extra}


async def run_study(config: BenchConfig, name: str, seed: int, task: Any, pool: ModelPool, space: SearchSpace,
                    backend: Backend, params: SamplingParams, agent_model: str, emit: Progress) -> RunOutcome:
    """One optimizer × seed as an ordinary study in its own run directory (resumed if it exists).
    The study does not test: the bench scores every selected graph itself on the shared test
    items, keeping per-item outcomes for the paired comparison."""
    from ttsgraph.search.base import get_optimizer
    from ttsgraph.store import RunStore
    from ttsgraph.study import Study

    run_dir = run_dir_for(config.out, name, seed)
    resume = (run_dir / "run.sqlite").exists()
    store = RunStore.open(run_dir) if resume else RunStore.create(run_dir)
    with store:
        if not resume:
            store.set_config("bench", {"optimizer": name, "seed": seed, **config.to_dict()})
        optimizer = get_optimizer(name)(space, seed=seed, iterations=config.iterations, batch=config.batch,
                                        **optimizer_options(name, backend, agent_model, config, task))
        study = Study(store, task, pool, space, optimizer, backend, iterations=config.iterations,
                      batch=config.batch, seed=seed, select=config.select, concurrency=config.concurrency,
                      params=params, test_limit=0)

        def on_event(event: dict[str, Any]) -> None:
            if event.get("kind") == "item":
                emit("item", event)

        result = await study.run(progress=on_event)
        trials = store.trials("search")
    return RunOutcome(
        optimizer=name, seed=seed, run_dir=str(run_dir), graph=result.best.graph.to_dict(),
        search_accuracy=float(result.search_accuracy), test_correct=[], test_errors=0,
        planned_units=float(result.best.planned_units), evaluations=int(result.evaluations),
        backend_calls=int(result.backend_calls), cache_hits=int(result.cache_hits),
        eval_seconds=float(result.eval_seconds), test_seconds=0.0, agent_seconds=float(result.agent_seconds),
        curve=best_so_far_curve([(len(t.item_ids), t.accuracy) for t in trials]))
