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
from ttsgraph.cli import flags
from ttsgraph.cli.common import console, emit_json, handle_errors, out, parse_pairs
from ttsgraph.confirm import vs_classical_line
from ttsgraph.config import RunConfig, deep_merge, legacy_config, make_config, resume_config
from ttsgraph.errors import BudgetError, TtsGraphError
from ttsgraph.graph_io import to_text
from ttsgraph.runtime import build_runtime
from ttsgraph.store import RunStore
from ttsgraph.study import Study, StudyResult


def default_run_dir(cfg: RunConfig) -> Path:
    """runs/<task>-<optimizer>-<budget>-s<seed>: the same command finds its run again for --resume."""
    budget = cfg.budget.label() if cfg.budget is not None else "nobudget"
    name = f"{cfg.task}-{cfg.optimizer.name}-{budget}-s{cfg.seed}"
    return Path("runs") / re.sub(r"[^A-Za-z0-9_.+-]+", "_", name)


class Display:
    """The live view: a progress bar over the evaluation budget and a one-row status table."""

    def __init__(self, cfg: RunConfig, enabled: bool) -> None:
        self.cfg = cfg
        self.enabled = enabled
        self.budget_units = 0.0  # set once the runtime has built the search space
        self.t0 = time.perf_counter()
        self.state: dict[str, Any] = {"iteration": 0, "accuracy": None, "best": None, "units": None, "calls": 0,
                                      "hits": 0, "trials": 0, "repaired": 0, "errors": 0, "phase": "searching"}
        self.bar = Progress(TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                            console=console)
        total = cfg.iterations * cfg.batch
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
        table.add_row(f"{s['iteration']}/{self.cfg.iterations}", str(s["trials"]), pct(s["accuracy"]),
                      pct(s["best"]), f"{units} / {self.budget_units:.2f}", str(s["calls"]), str(s["hits"]),
                      f"{time.perf_counter() - self.t0:.0f}s")
        note = Text(f"{self.cfg.optimizer.name} on {self.cfg.task} · {s['phase']}"
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
        elif kind == "item" and str(event.get("label", "")).startswith(("test", "racing", "classical", "confirming")):
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


def load_run_config(store: RunStore) -> RunConfig:
    """The config a run was created with (runs made before RunConfig stored a flat `search` dict)."""
    data = store.get_config("run")
    if data is None:
        legacy = store.get_config("search")
        if legacy is None:
            raise TtsGraphError(f"{store.path}: the run holds no search configuration")
        data = legacy_config(legacy)
    data = {"classical": False, "confirm": 0, **data}  # runs stored before issue 11 had neither
    return make_config(data)


def print_result(result: StudyResult, study: Study) -> None:
    d = result.to_dict()
    pct = lambda x: "—" if x is None else f"{100 * x:.1f}%"  # noqa: E731
    conf = d.get("confirmation") or {}
    name = next((f["name"] for f in conf.get("finalists", []) if f["trial"] == d["best_trial"] and f["classical"]),
                None)
    out.print(Text.assemble(("best graph", "bold"), (f" — {name}" if name else ""),
                            f" (trial {d['best_trial']}, {d['graph_hash']}): "
                            f"{len(result.best.graph.nodes)} nodes, {len(result.best.graph.edges)} edges, "
                            f"{d['planned_units']:.2f} / {study.space.budget.units:.2f} units"), soft_wrap=True)
    out.print(to_text(result.best.graph), highlight=False, markup=False)
    table = Table(show_header=False, box=None)
    table.add_row("search accuracy", f"{pct(d['search_accuracy'])} over {d['search_items']} items"
                  + (f" ({d['search_errors']} errors, counted as not correct)" if d["search_errors"] else ""))
    if d["test_accuracy"] is not None:
        lo, hi = d["test_ci"]
        table.add_row("test accuracy", f"{pct(d['test_accuracy'])} [{pct(lo)}–{pct(hi)}] over {d['test_items']} items"
                      + (f" ({d['test_errors']} errors, counted as not correct)" if d["test_errors"] else ""))
    if conf:
        short = "" if conf["items"] >= conf["requested_items"] else \
            f" (asked for {conf['requested_items']}; the search split has {conf['search_split']})"
        table.add_row("selection", f"cheapest finalist not significantly worse than the most accurate "
                      f"(paired 95% CI), {len(conf['finalists'])} finalists on {conf['items']} search items{short}")
    vs = d.get("vs_classical")
    if vs:
        table.add_row("vs best classical", vs_classical_line(vs))
    table.add_row("evaluations", f"{d['evaluations']} graph×item runs in {d['trials']} trials "
                  f"({d['search_evaluations']} by the optimizer)")
    table.add_row("backend calls / cache hits", f"{d['backend_calls']} / {d['cache_hits']}")
    table.add_row("time", f"{d['eval_seconds']:.1f}s evaluating + {d['agent_seconds']:.1f}s agent")
    table.add_row("run", f"{d['run_dir']} (best graph: {Path(d['run_dir']) / 'best_graph.json'})")
    out.print(table)
    if vs and vs.get("test"):  # the verdict, last: what the search bought over what needs none
        t = vs["test"]
        out.print(f"selected graph vs best classical ({vs['name']}) on {t['n']} test items: "
                  f"{100 * t['mean']:+.1f} points, paired 95% CI [{100 * t['low']:+.1f}, {100 * t['high']:+.1f}] "
                  f"(selected {pct(d['test_accuracy'])}, classical {pct(vs.get('test_accuracy'))})",
                  highlight=False, markup=False, soft_wrap=True)


@app.command("search")
@handle_errors
@flags.with_run_flags
def search_command(
    budget: float | None = typer.Option(None, "--budget", help="Budget in normalized units (1 = one reference-model call). The paper's MATH budgets 18/42/80 are --budget-nodes 4/8/12 (17.79/42.96/79.15 units): 42 units buys only b = 7."),
    budget_nodes: int | None = typer.Option(None, "--budget-nodes", "-b", help="Budget as a node count b (SPEC §2.3)."),
    optimizer: str | None = typer.Option(None, "--optimizer", help="agent-reinforce (default), random, tpe, reinforce, textgrad, hybrid."),
    opt: list[str] = flags.OPT,
    agent: str | None = typer.Option(None, "--agent", help="Agent model (a pool model) for LLM-driven optimizers (= --opt agent=M)."),
    proposal: str | None = typer.Option(None, "--proposal", help="agent-reinforce: next graph from the agent or sampled from θ (agent|sample)."),
    profile: str | None = typer.Option(None, "--profile", help="Profile file for Agent-REINFORCE's initialization (default: newest stored match)."),
    iterations: int | None = typer.Option(None, "--iterations", "-k", min=1, help="Iterations K (evaluation budget K × batch items; default 10). On --resume: a larger K continues the run."),
    batch: int | None = typer.Option(None, "--batch", "-n", min=1, help="Search items per iteration (default 3)."),
    seed: int | None = typer.Option(None, "--seed", help="Seed of the optimizer and of the item stream (default 0)."),
    out_dir: Path | None = typer.Option(None, "--out", help="Run directory (default runs/<task>-<optimizer>-<budget>-s<seed>)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out with its stored settings; only --iterations (larger), --test-limit and backend flags may change."),
    select: str | None = typer.Option(None, "--select", help="Which graph to return: best | last | pareto (default: best; pareto with --objective accuracy-latency)."),
    objective: str | None = typer.Option(None, "--objective", help="accuracy (default) | accuracy-latency."),
    latency_weight: float | None = typer.Option(None, "--latency-weight", min=0.0, help="λ of accuracy − λ·latency/latency_ref."),
    race: int | None = typer.Option(None, "--race", min=0, help="Re-score this many top candidates on more search items."),
    race_items: int | None = typer.Option(None, "--race-items", min=1, help="Items per racing re-score (default: batch)."),
    classical: bool | None = typer.Option(None, "--classical/--no-classical", help="Score the classical strategies that fit the budget (each model alone, self-consistency, a refinement chain, parallel + fuser) first, as the incumbent the search must beat (default: on)."),
    confirm: int | None = typer.Option(None, "--confirm", min=0, help="Finalists of the paired confirmation: every candidate on the same items, successive halving, the cheapest finalist not significantly worse than the most accurate wins (default 4; 0: off)."),
    confirm_items: int | None = typer.Option(None, "--confirm-items", min=1, help="Search items the finalists are confirmed on (default 20; at most the search split)."),
    confirm_tolerance: float | None = typer.Option(None, "--confirm-tolerance", min=0.0, max=1.0, help="How far (accuracy on the confirmation items) a cheaper finalist may trail the most accurate one and still be selected (default 0.02)."),
    test_limit: int | None = typer.Option(None, "--test-limit", min=0, help="Score the result on this many test items (0: skip; default all)."),
    output_model: str | None = typer.Option(None, "--output-model", help="The output node's model (default: the pool's; 'searched' to search it)."),
    output_max_tokens: int | None = typer.Option(None, "--output-max-tokens", min=1, help="Max tokens of the output node (default: --max-tokens; the paper: 1000 vs 4096)."),
    as_json: bool = flags.JSON,
    run: flags.RunFlags = flags.FILLED_IN,
) -> None:
    """Search the best test-time-compute graph for a task under a FLOPs budget (resumable)."""
    options = parse_pairs(opt, "optimizer")
    options.update({k: v for k, v in (("agent", agent), ("proposal", proposal)) if v is not None})
    given = run.given(**{
        "budget.units": budget, "budget.nodes": budget_nodes, "optimizer.name": optimizer,
        "optimizer.options": options or None, "profile": profile, "iterations": iterations, "batch": batch,
        "seed": seed, "select": select, "objective": objective, "latency_weight": latency_weight, "race": race,
        "race_items": race_items, "classical": classical, "confirm": confirm,
        "confirm_items": confirm_items, "confirm_tolerance": confirm_tolerance, "test_limit": test_limit, "output_model": output_model,
        "sampling.output_max_tokens": output_max_tokens,
    })
    if resume:
        if out_dir is None:
            raise TtsGraphError("--resume needs --out RUN (the run directory to continue)")
        if run.config is not None:
            raise TtsGraphError("--config starts a new run; --resume continues the one in --out with its own settings")
        store = RunStore.open(out_dir)
        try:
            stored = load_run_config(store)
            if "cache" not in given.get("backend", {}) and not run.no_cache and store.get_config("cache"):
                # the cache the interrupted run filled: its calls come back free
                given = deep_merge({"backend": {"cache": store.get_config("cache")}}, given)
            cfg = resume_config(stored, given)
        except BaseException:
            store.close()
            raise
    else:
        cfg = flags.new_config(run, given)
        if cfg.budget is None:
            raise BudgetError("give exactly one of --budget (units) or --budget-nodes (b), or set [budget] in --config")
        out_dir = out_dir or default_run_dir(cfg)
        store = RunStore.create(out_dir)
    try:
        display = Display(cfg, enabled=not as_json)
        with display, _stdout_to_stderr(as_json):
            result, study = asyncio.run(_run(cfg, store, display, resume=resume, out_dir=out_dir))
    finally:
        store.close()
    if as_json:
        emit_json(result.to_dict())
    else:
        print_result(result, study)


async def _run(cfg: RunConfig, store: RunStore, display: Display, *, resume: bool,
               out_dir: Path) -> tuple[StudyResult, Study]:
    started = bool(store.trials())
    try:
        async with build_runtime(cfg) as rt:
            study = Study.from_runtime(rt, store)
            rt.record_settings(store, study.space, created=not resume)
            display.budget_units = study.space.budget.units
            return await study.run(progress=display), study
    except BaseException:
        if not resume and not started and not store.trials():  # a run that never started: leave nothing behind
            store.close()
            _remove_run(out_dir)
        raise


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
    try:
        path.rmdir()
    except OSError:  # not empty: something else lives there
        pass


__all__ = ["search_command", "load_run_config", "default_run_dir"]
