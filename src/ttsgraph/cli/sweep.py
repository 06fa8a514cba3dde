"""`ttsgraph sweep`: one study per node budget and the compute-optimal frontier beside the baselines.

Writes `OUT/b<b>/` (a search run each), `OUT/run.sqlite` (the baselines' test scores),
`OUT/sweep.json` and `OUT/sweep_frontier.png`. The same command again with the same `--out` skips the
finished budgets and continues an unfinished one.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from ttsgraph.cli import flags
from ttsgraph.cli.app import app
from ttsgraph.cli.common import console, emit_json, handle_errors, out, parse_pairs
from ttsgraph.cli.search import _stdout_to_stderr
from ttsgraph.config import RunConfig, deep_merge
from ttsgraph.runtime import build_runtime
from ttsgraph.store import RunStore
from ttsgraph.sweep import SUMMARY, parse_budgets, run_sweep, statement

FRONTIER_PNG = "sweep_frontier.png"


def write_outputs(out_dir: Path, summary: dict[str, Any]) -> dict[str, str]:
    from ttsgraph.plots import png_bytes
    from ttsgraph.sweep_plots import frontier_figure

    (out_dir / SUMMARY).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    (out_dir / FRONTIER_PNG).write_bytes(png_bytes(frontier_figure(summary)))
    return {"json": str(out_dir / SUMMARY), "frontier": str(out_dir / FRONTIER_PNG)}


def print_table(summary: dict[str, Any]) -> None:
    pct = lambda x: "—" if x is None else f"{100 * x:.1f}%"
    table = Table(title=f"sweep · {summary['task']} · {summary['optimizer']} · {summary['test_items']} paired test items")
    for col in ("b", "units", "searched", "best baseline", "searched − baseline", "frontier (best within budget)"):
        table.add_column(col, justify="right")
    scored = {s["name"]: s for s in summary["scored"]}
    for p in summary["frontier"]:
        s = scored[f"search b{p['budget']}"]
        vs = p["search_vs_best_baseline"]
        lo, hi = p["best_ci"]
        table.add_row(str(p["budget"]), f"{p['budget_units']:.2f}", f"{pct(s['accuracy'])} @ {s['planned_units']:.2f}",
                      f"{p['best_baseline']}: {pct(p['best_baseline_accuracy'])}",
                      "—" if vs is None else f"{100 * vs['mean']:+.1f} [{100 * vs['low']:+.1f}, {100 * vs['high']:+.1f}]",
                      f"{p['best']}: {pct(p['best_accuracy'])} [{pct(lo)}–{pct(hi)}]")
    out.print(table)
    out.print("searched: test accuracy @ planned units; differences in points, paired on the same items")
    out.print(statement(summary))


@app.command("sweep")
@handle_errors
@flags.with_run_flags
def sweep_command(
    budgets: str = typer.Option(..., "--budgets", help="Node budgets b, comma-separated (e.g. 1,2,3,4,6): one study each."),
    optimizer: str | None = typer.Option(None, "--optimizer", help="agent-reinforce (default), random, tpe, reinforce, textgrad, hybrid."),
    opt: list[str] = flags.OPT,
    agent: str | None = typer.Option(None, "--agent", help="Agent model (a pool model) for LLM-driven optimizers (= --opt agent=M)."),
    iterations: int | None = typer.Option(None, "--iterations", "-k", min=1, help="Iterations K per study (default 10)."),
    batch: int | None = typer.Option(None, "--batch", "-n", min=1, help="Search items per iteration (default 3)."),
    seed: int | None = typer.Option(None, "--seed", help="Seed of the optimizers and of the shared item stream (default 0)."),
    race: int | None = typer.Option(None, "--race", min=0, help="Re-score this many top candidates on more search items."),
    race_items: int | None = typer.Option(None, "--race-items", min=1, help="Items per racing re-score (default: batch)."),
    test_limit: int | None = typer.Option(None, "--test-limit", min=1, help="Test items every graph is compared on (default all)."),
    output_model: str | None = typer.Option(None, "--output-model", help="The output node's model (default: the pool's; 'searched' to search it)."),
    out_dir: Path = typer.Option(..., "--out", help="Sweep directory; the same command again resumes it."),
    as_json: bool = flags.JSON,
    run: flags.RunFlags = flags.FILLED_IN,
) -> None:
    """One study per budget, sharing items and cache; the compute-optimal frontier (best test accuracy
    within each budget) beside each model alone and self-consistency, on the same test items."""
    grid = parse_budgets(budgets)
    options = parse_pairs(opt, "optimizer")
    if agent is not None:
        options["agent"] = agent
    given = run.given(**{
        "budget.nodes": grid[0], "optimizer.name": optimizer, "optimizer.options": options or None,
        "iterations": iterations, "batch": batch, "seed": seed, "race": race, "race_items": race_items,
        "test_limit": test_limit, "output_model": output_model,
    })
    cfg = flags.new_config(run, given)
    resuming = (out_dir / RunStore.FILE).exists()
    store = RunStore.open(out_dir) if resuming else RunStore.create(out_dir)
    try:
        if resuming and "cache" not in given.get("backend", {}) and not run.no_cache and store.get_config("cache"):
            cfg = RunConfig.model_validate(deep_merge(cfg.to_json(), {"backend": {"cache": store.get_config("cache")}}))
        cache_path = cfg.backend.cache_path()
        store.set_config("cache", str(cache_path) if cache_path else None)
        with _stdout_to_stderr(as_json):
            summary = _run(cfg, store, grid, out_dir, show=not as_json)
    finally:
        store.close()
    paths = write_outputs(out_dir, summary)
    if as_json:
        emit_json({**summary, "statement": statement(summary), "files": paths})
        return
    print_table(summary)
    out.print(f"wrote {paths['frontier']} and {paths['json']}")


def _run(cfg: RunConfig, store: RunStore, grid: tuple[int, ...], out_dir: Path, *, show: bool) -> dict[str, Any]:
    bar = Progress(TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn(), console=console, disable=not show)
    task = bar.add_task("sweep", total=None)

    def on_event(e: dict[str, Any]) -> None:
        kind = e.get("kind")
        if kind == "study":
            bar.update(task, description=f"b{e['budget']} study ({e['units']:.1f} units)"
                       + (" · resumed" if e["resumed"] else ""), completed=0, total=None)
        elif kind == "skip":
            console.print(f"b{e['budget']}: finished before, skipped")
        elif kind == "score":
            bar.update(task, description=f"test · {e['label']}", completed=0, total=e["items"])
        elif kind == "item":
            if "total" in e:
                bar.update(task, completed=e.get("done", 0), total=e.get("total"))
            else:
                bar.update(task, advance=1)

    async def main() -> dict[str, Any]:
        async with build_runtime(cfg) as rt:
            return await run_sweep(rt, store, grid, out_dir, on_event)

    with bar:
        return asyncio.run(main())


__all__ = ["sweep_command", "write_outputs"]
