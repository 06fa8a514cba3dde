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

from ttsgraph.cli.app import app
from ttsgraph.cli.common import console, emit_json, get_pool, handle_errors, out, parse_pairs
from ttsgraph.errors import GraphError, TaskError
from ttsgraph.executor import EvalSummary, Executor, ItemResult, summarize
from ttsgraph.graph import Graph
from ttsgraph.graph_io import load_graph
from ttsgraph.llm.base import SamplingParams
from ttsgraph.llm.cache import default_cache_path
from ttsgraph.llm.router import build_backend, check_bindings
from ttsgraph.models import ModelPool
from ttsgraph.tasks import load_task


class Split(str, Enum):
    search = "search"
    test = "test"



def check_graph_models(graph: Graph, pool: ModelPool) -> None:
    """Every node's model must belong to the pool being evaluated (not just to the catalogue)."""
    for node in graph.nodes:
        if node.model not in pool.models:
            raise GraphError(
                f"node {node.id!r} uses model {node.model!r}, which is not in pool {pool.name!r} "
                f"({', '.join(pool.models)}); pass --models",
                node=node.id,
            )


def run_eval(
    graph: Graph,
    pool: ModelPool,
    task: Any,
    items: list[Any],
    *,
    params: SamplingParams,
    concurrency: int,
    cache: Path | None,
    timeout: float,
    retries: int,
    progress: Progress | None = None,
) -> tuple[list[ItemResult], float]:
    """Run the graph on the items; returns per-item results and the total wall seconds."""
    backend = build_backend(pool, cache, timeout=timeout, retries=retries)
    executor = Executor(backend, pool, task, params=params, concurrency=concurrency)
    tally = {"correct": 0, "errors": 0}
    bar = progress.add_task("eval", total=len(items)) if progress is not None else None

    def on_result(r: ItemResult) -> None:
        tally["correct"] += int(r.correct)
        tally["errors"] += int(r.error is not None)
        if progress is not None and bar is not None:
            progress.update(bar, advance=1, description=f"correct {tally['correct']} · errors {tally['errors']}")

    async def main() -> list[ItemResult]:
        try:
            return await executor.run_items(graph, items, on_result=on_result)
        finally:
            aclose = getattr(backend, "aclose", None)
            if callable(aclose):
                await aclose()

    started = time.perf_counter()
    results = asyncio.run(main())
    return results, time.perf_counter() - started


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
        console.print(f"[red]error ×{count}:[/] {reason}", highlight=False)


@app.command("eval")
@handle_errors
def eval_command(
    graph_file: Path = typer.Argument(..., help="Graph file (JSON or the text form)."),
    task: str = typer.Option(..., "--task", "-t", help="Task name, e.g. arithmetic, math500, mmlu:anatomy, jsonl:PATH."),
    option: list[str] = typer.Option(None, "--option", "-o", help="Task option KEY=VALUE (repeatable), e.g. digits=2."),
    split: Split = typer.Option(Split.test, "--split", help="Which split to score: the held-out test split or the search split."),
    limit: int | None = typer.Option(None, "--limit", "-n", min=1, help="Only the first N items of the split."),
    models: str | None = typer.Option(None, "--models", help="Pool name (local, paper, paper-full) or a models.toml; default local."),
    concurrency: int = typer.Option(4, "--concurrency", "-c", min=1, help="Simultaneous calls per serving backend."),
    out_dir: Path | None = typer.Option(None, "--out", help="Write traces.jsonl and summary.json here."),
    cache: Path | None = typer.Option(None, "--cache", help="Response cache file (default: ~/.cache/ttsgraph/responses.sqlite or $TTSGRAPH_HOME)."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Call the backends for every node; store nothing."),
    max_tokens: int = typer.Option(256, "--max-tokens", min=1, help="Max tokens per node."),
    temperature: float = typer.Option(0.1, "--temperature", min=0.0, help="Sampling temperature of every node."),
    timeout: float = typer.Option(600.0, "--timeout", help="Seconds per HTTP attempt (OpenAI-compatible backends)."),
    retries: int = typer.Option(3, "--retries", min=0, help="Retries after a 429/5xx/connection error/timeout."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Run GRAPH on a task split and report accuracy (95% CI), errors, FLOPs and latency."""
    pool = get_pool(models)
    graph = load_graph(graph_file)
    graph.validate(models=set(pool.specs))
    check_graph_models(graph, pool)
    check_bindings(pool, sorted({n.model for n in graph.pruned()[0].nodes}))
    task_obj = load_task(task, **parse_pairs(option))
    items = task_obj.items(split.value)
    if limit is not None:
        items = items[:limit]
    if not items:
        raise TaskError(f"task {task!r} has no items in split {split.value!r}")
    cache_path = None if no_cache else (cache or default_cache_path())
    params = SamplingParams(temperature=temperature, max_tokens=max_tokens)

    progress = Progress(
        SpinnerColumn(), TextColumn("[progress.description]{task.description}"), BarColumn(),
        MofNCompleteColumn(), TimeElapsedColumn(), console=console, transient=as_json,
    )
    with progress:
        results, seconds = run_eval(
            graph, pool, task_obj, items, params=params, concurrency=concurrency, cache=cache_path,
            timeout=timeout, retries=retries, progress=progress,
        )
    summary = summarize(results, graph, pool, task_obj)
    report: dict[str, Any] = {
        **summary.to_dict(),
        "graph": str(graph_file),
        "split": split.value,
        "pool": pool.name,
        "params": params.to_dict(),
        "concurrency": concurrency,
        "cache": str(cache_path) if cache_path else None,
        "seconds": seconds,
        "traces": None,
    }
    if out_dir is not None:
        report["traces"] = str(out_dir / "traces.jsonl")
        write_traces(out_dir, results, items, report)
    if as_json:
        emit_json(report)
    else:
        print_summary(summary, report)
