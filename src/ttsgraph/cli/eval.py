"""`ttsgraph eval`: score one graph on a task split, with confidence intervals, FLOPs and latency.

This is what a user runs on the graph a search found (on the held-out `test` split), and what
the README's first command runs on the embedded models. Per-item traces (every node's text,
tokens, timing, FLOPs, cache hit and error) go to `--out DIR/traces.jsonl`, so any number in the
summary can be traced back to the calls that produced it.
"""

from __future__ import annotations

import asyncio
import json
import time
from enum import Enum
from pathlib import Path
from typing import Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from ttsgraph.cli.app import app
from ttsgraph.cli import flags
from ttsgraph.cli.common import EXIT_NOTHING_SCORED, console, emit_json, handle_errors, out, warn
from ttsgraph.config import RunConfig
from ttsgraph.errors import GraphError, TaskError
from ttsgraph.evaluator import evaluate_one
from ttsgraph.executor import EvalSummary, ItemResult, summarize
from ttsgraph.graph import Graph
from ttsgraph.graph_io import load_graph
from ttsgraph.llm.router import endpoint_states
from ttsgraph.models import ModelPool
from ttsgraph.runtime import build_runtime


class Split(str, Enum):
    search = "search"
    test = "test"



def check_graph_models(graph: Graph, pool: ModelPool) -> None:
    """Every node's model must belong to the pool being evaluated (not just to the catalogue)."""
    for node in graph.nodes:
        if node.model is not None and node.model not in pool.models:
            raise GraphError(
                f"node {node.id!r} uses model {node.model!r}, which is not in pool {pool.name!r} "
                f"({', '.join(pool.models)}); pass --models",
                node=node.id,
            )


def run_eval(cfg: RunConfig, graph: Graph, split: str, limit: int | None,
             progress: Progress | None = None) -> tuple[Any, list[Any], list[ItemResult], float]:
    """Run the graph on the split (through the runtime the config describes); returns the pool, the
    items, per-item results and the total wall seconds."""
    models = sorted(graph.pruned()[0].models_used())

    async def main() -> tuple[Any, list[Any], list[ItemResult], float]:
        async with build_runtime(cfg, models=models) as rt:
            check_graph_models(graph, rt.pool)
            items = rt.task.items(split)[:limit] if limit is not None else rt.task.items(split)
            if not items:
                raise TaskError(f"task {cfg.task!r} has no items in split {split!r}")
            tally = {"correct": 0, "errors": 0}
            bar = progress.add_task("eval", total=len(items)) if progress is not None else None

            def on_result(r: ItemResult) -> None:
                tally["correct"] += int(r.correct)
                tally["errors"] += int(r.error is not None)
                if progress is not None and bar is not None:
                    progress.update(bar, advance=1, description=f"correct {tally['correct']} · errors {tally['errors']}")

            started = time.perf_counter()
            results = await evaluate_one(rt.evaluator, graph, items, on_result=on_result)
            return rt, items, results, time.perf_counter() - started

    return asyncio.run(main())


def write_traces(out_dir: Path, results: list[ItemResult], items: list[Any], report: dict[str, Any]) -> Path:
    """`traces.jsonl` (one item per line, with the gold answer) and `summary.json` under out_dir."""
    out_dir.mkdir(parents=True, exist_ok=True)
    gold = {str(i.id): i for i in items}
    path = out_dir / "traces.jsonl"
    with path.open("w", encoding="utf-8") as fh:
        for r in results:
            row = r.to_dict()
            item = gold.get(r.item_id)
            if item is not None:
                row["question"] = item.question
                row["gold"] = item.answer
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    (out_dir / "summary.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return path


def _fmt(x: float | None, spec: str = ".2f") -> str:
    return "—" if x is None else format(x, spec)


def print_summary(summary: EvalSummary, report: dict[str, Any]) -> None:
    s = summary
    table = Table(title=f"eval · {report['graph']} · {s.task} ({report['split']}, {s.items} items)", show_header=False)
    table.add_column("", style="bold")
    table.add_column("")
    table.add_row("accuracy", f"{s.accuracy:.3f}  (95% CI {s.ci[0]:.3f}–{s.ci[1]:.3f})")
    table.add_row("correct / wrong / errors", f"{s.correct} / {s.wrong} / {s.errors}")
    table.add_row("FLOPs per item (units)", f"planned {s.planned_units:.2f} · measured {_fmt(s.measured_units)}")
    for name, key in (("latency wall (s)", "wall"), ("latency critical path (s)", "critical_path"),
                      ("latency sequential sum (s)", "sequential")):
        lat = s.latency[key]
        table.add_row(name, f"mean {_fmt(lat['mean'])} · p50 {_fmt(lat['p50'])} · p95 {_fmt(lat['p95'])}")
    table.add_row("backend calls / cache hits", f"{s.backend_calls} / {s.cache_hits}")
    table.add_row("total time (s)", f"{report['seconds']:.1f}")
    table.add_row("cache", str(report["cache"] or "off"))
    if report.get("traces"):
        table.add_row("traces", report["traces"])
    out.print(table)
    for reason, count in s.error_reasons.items():
        warn(f"error ×{count}: {reason}", style="red")


@app.command("eval")
@handle_errors
@flags.with_run_flags
def eval_command(
    graph_file: Path = typer.Argument(..., help="Graph file (JSON or the text form)."),
    split: Split = typer.Option(Split.test, "--split", help="Which split to score: the held-out test split or the search split."),
    limit: int | None = typer.Option(None, "--limit", "-n", min=1, help="Only the first N items of the split."),
    out_dir: Path | None = typer.Option(None, "--out", help="Write traces.jsonl and summary.json here."),
    as_json: bool = flags.JSON,
    run: flags.RunFlags = flags.FILLED_IN,
) -> None:
    """Run GRAPH on a task split and report accuracy (95% CI), errors, FLOPs and latency.

    Exit status: 0 when items were scored (some may have errored), 2 for bad input, 3 when every
    item errored (nothing was scored; the reason is printed, and with --json is the "error" key).
    """
    cfg = flags.new_config(run)
    graph = load_graph(graph_file)
    progress = Progress(
        SpinnerColumn(), TextColumn("{task.description}", style="progress.description", markup=False), BarColumn(),
        MofNCompleteColumn(), TimeElapsedColumn(), console=console, transient=as_json,
    )
    with progress:
        rt, items, results, seconds = run_eval(cfg, graph, split.value, limit, progress)
    summary = summarize(results, graph, rt.pool, rt.task)
    cache_path = cfg.backend.cache_path()
    report: dict[str, Any] = {
        **summary.to_dict(),
        "graph": str(graph_file),
        "split": split.value,
        "pool": rt.pool.name,
        "params": rt.params.to_dict(),
        "concurrency": cfg.backend.concurrency,
        "cache": str(cache_path) if cache_path else None,
        "seconds": seconds,
        "traces": None,
    }
    endpoints = endpoint_states(rt.backend)
    if endpoints:  # endpoint pools: which replicas served, which were set aside and why
        report["endpoints"] = endpoints
    nothing_scored = summary.items > 0 and summary.errors == summary.items
    if nothing_scored:  # accuracy 0.000 would read as a measurement; it is none
        report["error"] = (f"nothing was scored: all {summary.items} items errored"
                           + (f" ({next(iter(summary.error_reasons))})" if summary.error_reasons else ""))
    if out_dir is not None:
        report["traces"] = str(out_dir / "traces.jsonl")
        write_traces(out_dir, results, items, report)
    if as_json:
        emit_json(report)
    else:
        print_summary(summary, report)
        for model, states in endpoints.items():
            for e in states:
                out.print(Text(f"{model} @ {e['base_url']}: {e['state']}, {e['requests']} requests, "
                               f"{e['errors']} errors" + (f" (last: {e['last_error']})" if e["last_error"] else "")))
    if nothing_scored:
        warn(f"error: {report['error']}", style="bold red")
        raise typer.Exit(EXIT_NOTHING_SCORED)
