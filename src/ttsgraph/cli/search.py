"""`ttsgraph search`: find the best graph for a task under a budget, resumably, with a live display.

Everything a run needs to be continued is written to `RUN/run.sqlite` first (the task and its
options, the pool, the budget, the optimizer and its options, the seed, the evaluation budget), so
`--resume` rebuilds the same study from the run directory alone and carries on after an
interruption or a `kill -9`. Worker and agent calls go through the response cache, so whatever the
interrupted process had already asked comes back for free.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer
from rich.console import Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from ttsgraph.cli.app import app
from ttsgraph.cli.common import console, emit_json, get_pool, handle_errors, out, parse_pairs
from ttsgraph.cost import Budget, TaskLengths
from ttsgraph.errors import BudgetError, TaskError, TtsGraphError
from ttsgraph.graph_io import to_text
from ttsgraph.llm.base import SamplingParams
from ttsgraph.llm.cache import default_cache_path
from ttsgraph.llm.router import build_backend, check_bindings
from ttsgraph.search.space import SearchSpace
from ttsgraph.store import RunStore
from ttsgraph.study import OBJECTIVES, SELECTIONS, Study, StudyResult


def default_run_dir(cfg: dict[str, Any]) -> Path:
    """runs/<task>-<optimizer>-<budget>-s<seed>: the same command finds its run again for --resume."""
    budget = f"b{cfg['budget_nodes']}" if cfg.get("budget_nodes") is not None else f"u{cfg['budget']:g}"
    name = f"{cfg['task']}-{cfg['optimizer']}-{budget}-s{cfg['seed']}"
    return Path("runs") / re.sub(r"[^A-Za-z0-9_.+-]+", "_", name)


class Display:
    """The live view: a progress bar over the evaluation budget and a one-row status table."""

    def __init__(self, cfg: dict[str, Any], budget_units: float, enabled: bool) -> None:
        self.cfg = cfg
        self.enabled = enabled
        self.budget_units = budget_units
        self.t0 = time.perf_counter()
        self.state: dict[str, Any] = {"iteration": 0, "accuracy": None, "best": None, "units": None, "calls": 0,
                                      "hits": 0, "trials": 0, "repaired": 0, "errors": 0, "phase": "searching"}
        self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                            console=console)
        total = int(cfg["iterations"]) * int(cfg["batch"])
        self.items_task = self.bar.add_task("search items", total=total)
        self.test_task: Any = None
        self.live = Live(self._render(), console=console, refresh_per_second=4, transient=False) if enabled else None

    def _render(self) -> Group:
        s = self.state
        pct = lambda x: "—" if x is None else f"{100 * x:.1f}%"  # noqa: E731
        table = Table(box=None, show_header=True, header_style="bold")
        for col in ("iteration", "trials", "current acc", "best acc", "cost / budget", "calls", "cache hits",
                    "elapsed"):
            table.add_column(col, justify="right")
        units = "—" if s["units"] is None else f"{s['units']:.2f}"
        table.add_row(f"{s['iteration']}/{self.cfg['iterations']}", str(s["trials"]), pct(s["accuracy"]),
                      pct(s["best"]), f"{units} / {self.budget_units:.2f}", str(s["calls"]), str(s["hits"]),
                      f"{time.perf_counter() - self.t0:.0f}s")
        note = Text(f"{self.cfg['optimizer']} on {self.cfg['task']} · {s['phase']}"
                    + (f" · {s['repaired']} repaired" if s["repaired"] else "")
                    + (f" · {s['errors']} item errors" if s["errors"] else ""), style="dim")
        return Group(note, table, self.bar)

    def __call__(self, event: dict[str, Any]) -> None:
        s = self.state
        kind = event.get("kind")
        s["calls"] = event.get("backend_calls", s["calls"])
        s["hits"] = event.get("cache_hits", s["hits"])
        if kind in ("ask", "resume"):
            s["iteration"] = int(event.get("iteration", 0)) + (0 if kind == "resume" else 1)
            self.bar.update(self.items_task, completed=event.get("items_used", 0))
            if kind == "resume":
                s["trials"] = event.get("trials", 0)
                s["phase"] = "resumed"
        elif kind == "trial":
            s["trials"] += 1
            s["accuracy"] = event.get("accuracy")
            s["best"] = event.get("best_accuracy")
            s["units"] = event.get("planned_units")
            s["repaired"] += int(bool(event.get("repaired")))
            s["errors"] += int(event.get("errors") or 0)
            self.bar.update(self.items_task, completed=event.get("items_used", 0))
        elif kind == "item" and str(event.get("label", "")).startswith(("test", "racing")):
            s["phase"] = str(event["label"]).split(" ")[0]
            if self.test_task is None:
                self.test_task = self.bar.add_task(s["phase"] + " items", total=event.get("total", 0))
            self.bar.update(self.test_task, completed=event.get("done", 0), total=event.get("total", 0),
                            description=s["phase"] + " items")
        elif kind == "done":
            s["phase"] = "done"
        if self.live is not None:
            self.live.update(self._render())

    def __enter__(self) -> Display:
        if self.live is not None:
            self.live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.live is not None:
            self.live.update(self._render())
            self.live.__exit__(*exc)


def build_study(cfg: dict[str, Any], store: RunStore, cache: Path | None, concurrency: int) -> Study:
    """Everything from the stored config: task, pool, budget, space, backend, optimizer, study."""
    from ttsgraph.search.base import get_optimizer
    from ttsgraph.tasks import load_task

    task = load_task(cfg["task"], **cfg["task_options"])
    if cfg.get("lengths"):  # pinned when the run was created: a resumed run keeps its budget's meaning
        task.lengths = TaskLengths(*map(float, cfg["lengths"]))
    pool = get_pool(cfg["models"])
    if cfg.get("budget_nodes") is not None:
        budget = Budget.from_nodes(int(cfg["budget_nodes"]), pool, task.lengths)
    else:
        budget = Budget(float(cfg["budget"]))
    output_model = cfg.get("output_model") or pool.output
    space = SearchSpace(pool, task.lengths, budget, output_model=None if output_model == "searched" else output_model,
                        temperature=float(cfg["temperature"]))
    check_bindings(pool)
    backend = build_backend(pool, cache)
    options: dict[str, Any] = dict(cfg["optimizer_options"])
    options.update({"backend": backend, "task": task, "objective": cfg["objective"]})
    if cfg.get("agent"):
        options["agent"] = cfg["agent"]
    if cfg.get("proposal"):
        options["proposal"] = cfg["proposal"]
    optimizer = get_optimizer(cfg["optimizer"])(space, seed=int(cfg["seed"]), iterations=int(cfg["iterations"]),
                                                batch=int(cfg["batch"]), **options)
    params = SamplingParams(temperature=float(cfg["temperature"]), max_tokens=int(cfg["max_tokens"]))
    return Study(store, task, pool, space, optimizer, backend, iterations=int(cfg["iterations"]),
                 batch=int(cfg["batch"]), seed=int(cfg["seed"]), objective=cfg["objective"],
                 latency_weight=float(cfg["latency_weight"]), select=cfg["select"], concurrency=concurrency,
                 params=params, race=int(cfg["race"]), race_items=cfg.get("race_items"),
                 test_limit=cfg.get("test_limit"))


def print_result(result: StudyResult, study: Study) -> None:
    d = result.to_dict()
    pct = lambda x: "—" if x is None else f"{100 * x:.1f}%"  # noqa: E731
    out.print(f"[bold]best graph[/] (trial {d['best_trial']}, {d['graph_hash']}): "
              f"{len(result.best.graph.nodes)} nodes, {len(result.best.graph.edges)} edges, "
              f"{d['planned_units']:.2f} / {study.space.budget.units:.2f} units")
    out.print(to_text(result.best.graph), highlight=False, markup=False)
    table = Table(show_header=False, box=None)
    table.add_row("search accuracy", f"{pct(d['search_accuracy'])} over {d['search_items']} items")
    if d["test_accuracy"] is not None:
        lo, hi = d["test_ci"]
        table.add_row("test accuracy", f"{pct(d['test_accuracy'])} [{pct(lo)}–{pct(hi)}] over {d['test_items']} items"
                      + (f" ({d['test_errors']} errors)" if d["test_errors"] else ""))
    table.add_row("evaluations", f"{d['evaluations']} graph×item runs in {d['trials']} trials")
    table.add_row("backend calls / cache hits", f"{d['backend_calls']} / {d['cache_hits']}")
    table.add_row("time", f"{d['eval_seconds']:.1f}s evaluating + {d['agent_seconds']:.1f}s agent")
    table.add_row("run", f"{d['run_dir']} (best graph: {Path(d['run_dir']) / 'best_graph.json'})")
    out.print(table)


@app.command("search")
@handle_errors
def search_command(
    task: str | None = typer.Option(None, "--task", "-t", help="Task, e.g. arithmetic, math500, mmlu:anatomy, jsonl:PATH."),
    option: list[str] = typer.Option(None, "--option", "-o", help="Task option KEY=VALUE (repeatable)."),
    budget: float | None = typer.Option(None, "--budget", help="Budget in normalized units (1 = one reference-model call)."),
    budget_nodes: int | None = typer.Option(None, "--budget-nodes", "-b", help="Budget as a node count b (SPEC §2.3)."),
    models: str | None = typer.Option(None, "--models", help="Pool name (local, paper, paper-full) or models.toml; default local."),
    optimizer: str = typer.Option("agent-reinforce", "--optimizer", help="agent-reinforce, random, tpe, reinforce, textgrad, hybrid."),
    opt: list[str] = typer.Option(None, "--opt", help="Optimizer option KEY=VALUE (repeatable), passed through."),
    agent: str | None = typer.Option(None, "--agent", help="Agent model (a pool model) for LLM-driven optimizers."),
    proposal: str | None = typer.Option(None, "--proposal", help="agent-reinforce: next graph from the agent or sampled from θ (agent|sample)."),
    iterations: int = typer.Option(10, "--iterations", "-k", min=1, help="Iterations K (evaluation budget K × batch items)."),
    batch: int = typer.Option(3, "--batch", "-n", min=1, help="Search items per iteration."),
    seed: int = typer.Option(0, "--seed", help="Seed of the optimizer and of the item stream."),
    out_dir: Path | None = typer.Option(None, "--out", help="Run directory (default runs/<task>-<optimizer>-<budget>-s<seed>)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from where it stopped, with its stored settings and cache (only --cache, --no-cache, --concurrency, --json apply)."),
    select: str | None = typer.Option(None, "--select", help="Which graph to return: best | last | pareto (default: best; pareto with --objective accuracy-latency)."),
    objective: str = typer.Option("accuracy", "--objective", help="accuracy | accuracy-latency."),
    latency_weight: float = typer.Option(0.0, "--latency-weight", min=0.0, help="λ of accuracy − λ·latency/latency_ref."),
    race: int = typer.Option(0, "--race", min=0, help="Re-score this many top candidates on more search items."),
    race_items: int | None = typer.Option(None, "--race-items", min=1, help="Items per racing re-score (default: batch)."),
    test_limit: int | None = typer.Option(None, "--test-limit", min=0, help="Score the result on this many test items (0: skip; default all)."),
    output_model: str | None = typer.Option(None, "--output-model", help="The output node's model (default: the pool's; 'searched' to search it)."),
    max_tokens: int = typer.Option(256, "--max-tokens", min=1, help="Max tokens per worker node."),
    temperature: float = typer.Option(0.1, "--temperature", min=0.0, help="Worker sampling temperature."),
    cache: Path | None = typer.Option(None, "--cache", help="Response cache file (default: ~/.cache/ttsgraph/responses.sqlite)."),
    no_cache: bool = typer.Option(False, "--no-cache", help="No response cache (a resumed run then re-calls everything)."),
    concurrency: int = typer.Option(4, "--concurrency", "-c", min=1, help="Simultaneous calls per serving backend."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object at the end."),
) -> None:
    """Search the best test-time-compute graph for a task under a FLOPs budget (resumable)."""
    if select is None:
        # With a joint objective, the most accurate graph may be dominated by an equally accurate,
        # faster one: choose on the Pareto front unless the user asks otherwise.
        select = "pareto" if objective == "accuracy-latency" else "best"
    if select not in SELECTIONS:
        raise TtsGraphError(f"--select must be one of {', '.join(SELECTIONS)}, got {select!r}")
    if objective not in OBJECTIVES:
        raise TtsGraphError(f"--objective must be one of {', '.join(OBJECTIVES)}, got {objective!r}")
    if proposal is not None and proposal not in ("agent", "sample"):
        raise TtsGraphError(f"--proposal must be agent or sample, got {proposal!r}")
    cache_path = None if no_cache else (cache or default_cache_path())
    if resume:
        if out_dir is None:
            raise TtsGraphError("--resume needs --out RUN (the run directory to continue)")
        store = RunStore.open(out_dir)
        cfg = store.get_config("search")
        if cfg is None:
            store.close()
            raise TtsGraphError(f"{out_dir}: the run holds no search configuration")
        stored_cache = store.get_config("cache")
        if cache is None and not no_cache and stored_cache:
            cache_path = Path(stored_cache)  # the cache the interrupted run filled: its calls come back free
    else:
        if task is None:
            raise TaskError("--task is required (or --resume with --out)")
        if (budget is None) == (budget_nodes is None):
            raise BudgetError("give exactly one of --budget (units) or --budget-nodes (b)")
        cfg = {"task": task, "task_options": parse_pairs(option, "task"), "models": models, "budget": budget,
               "budget_nodes": budget_nodes, "optimizer": optimizer, "optimizer_options": parse_pairs(opt, "optimizer"),
               "agent": agent, "proposal": proposal, "iterations": iterations, "batch": batch, "seed": seed,
               "select": select, "objective": objective, "latency_weight": latency_weight, "test_limit": test_limit,
               "max_tokens": max_tokens, "temperature": temperature, "output_model": output_model, "race": race,
               "race_items": race_items}
        if models is not None and Path(models).exists():
            cfg["models"] = str(Path(models).resolve())
        if cache_path is not None:
            cache_path = cache_path.resolve()
        out_dir = out_dir or default_run_dir(cfg)
        store = RunStore.create(out_dir)
    try:
        try:
            study = build_study(cfg, store, cache_path, concurrency)
        except BaseException:
            if not resume and not store.trials():  # a run that never started: leave no directory behind
                store.close()
                _remove_run(out_dir)
            raise
        if not resume:
            cfg["lengths"] = [study.task.lengths.prompt, study.task.lengths.answer]
            store.set_config("search", cfg)
            store.set_config("space", study.space.describe())
            store.set_config("pool", study.pool.to_dict())
            store.set_config("command", sys.argv[1:])
        store.set_config("cache", str(cache_path) if cache_path else None)
        display = Display(cfg, study.space.budget.units, enabled=not as_json)
        with display, _stdout_to_stderr(as_json):
            result = asyncio.run(_run(study, display))
    finally:
        store.close()
    if as_json:
        emit_json(result.to_dict())
    else:
        print_result(result, study)


@contextlib.contextmanager
def _stdout_to_stderr(active: bool) -> Iterator[None]:
    """With --json, stdout must hold only the JSON object: while the study runs, file descriptor 1
    points at stderr, so native libraries (llama.cpp) printing to stdout cannot corrupt it."""
    if not active:
        yield
        return
    sys.stdout.flush()
    try:
        saved = os.dup(1)
    except OSError:  # no real stdout (e.g. captured by a test runner): nothing native can reach it
        yield
        return
    try:
        os.dup2(2, 1)
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def _remove_run(path: Path) -> None:
    for name in (RunStore.FILE, RunStore.FILE + "-wal", RunStore.FILE + "-shm", ".lock"):
        (path / name).unlink(missing_ok=True)
    for sub in (path / "traces", path):
        try:
            sub.rmdir()
        except OSError:
            pass


async def _run(study: Study, display: Display) -> StudyResult:
    try:
        return await study.run(progress=display)
    finally:
        aclose = getattr(study.backend, "aclose", None)
        if callable(aclose):
            await aclose()


__all__ = ["search_command", "build_study", "parse_pairs", "default_run_dir"]
