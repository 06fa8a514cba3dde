"""`ttsgraph pilot`: the paper's width × depth pilot of one model (Insights 2–3), paired and resumable.

Writes `OUT/run.sqlite` (every cell's per-item results), `OUT/pilot.json`, `OUT/pilot_heatmap.png`
and `OUT/pilot_curves.png`. Running the same command again with the same `--out` skips the finished
cells (and the interrupted cell's finished items come back from the response cache).
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
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
from ttsgraph.cli.common import console, emit_json, handle_errors, out
from ttsgraph.cli.search import _stdout_to_stderr
from ttsgraph.config import RunConfig, deep_merge
from ttsgraph.errors import TaskError
from ttsgraph.pilot import PilotResult, PilotSettings, parse_axis, run_pilot, statements
from ttsgraph.runtime import build_runtime
from ttsgraph.store import RunStore

HEATMAP, CURVES, SUMMARY = "pilot_heatmap.png", "pilot_curves.png", "pilot.json"


def write_outputs(out_dir: Path, result: PilotResult) -> dict[str, str]:
    """pilot.json and the two PNGs; returns their paths by name."""
    from ttsgraph import pilot_plots
    from ttsgraph.plots import png_bytes

    data = result.to_dict()
    paths = {"json": out_dir / SUMMARY, "heatmap": out_dir / HEATMAP, "curves": out_dir / CURVES}
    paths["json"].write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    paths["heatmap"].write_bytes(png_bytes(pilot_plots.heatmap(data)))
    paths["curves"].write_bytes(png_bytes(pilot_plots.curves(data)))
    return {k: str(v) for k, v in paths.items()}


def print_table(result: PilotResult) -> None:
    s = result.settings
    table = Table(title=f"pilot · {s.task} · {s.model} · {len(result.item_ids)} paired items ({s.split})")
    for col in ("width", "depth", "nodes", "planned units", "accuracy", "95% CI", "errors", "seconds"):
        table.add_column(col, justify="right")
    for c in result.cells:
        lo, hi = c.ci
        table.add_row(str(c.width), str(c.depth), str(c.width * c.depth + 1),
                      f"{c.units:.2f}" + ("*" if c.over_budget else ""), f"{100 * c.accuracy:.1f}%",
                      f"{100 * lo:.1f}–{100 * hi:.1f}%", str(c.errors), f"{c.seconds:.0f}")
    out.print(table)
    if any(c.over_budget for c in result.cells):
        out.print(f"* over the budget of {s.budget:g} units")
    a = result.analysis
    b = a["best"]
    d = a["best_vs_smallest"]
    out.print(f"best cell: width {b['width']} × depth {b['depth']} at {100 * b['accuracy']:.1f}% "
              f"({b['planned_units']:.2f} units); vs {s.widths[0]} × {s.depths[0]}: "
              f"{100 * d['mean']:+.1f} points [{100 * d['low']:+.1f}, {100 * d['high']:+.1f}] paired")
    for line in statements(a):
        out.print(line)
    if result.skipped:
        out.print(f"{result.skipped} cell(s) were already in the run store and were not rerun")


def _default_out(task: str, model: str) -> Path:
    return Path("runs") / re.sub(r"[^A-Za-z0-9_.+-]+", "_", f"pilot-{task}-{model}")


@app.command("pilot")
@handle_errors
@flags.with_run_flags
def pilot_command(
    model: str = typer.Option(..., "--model", "-m", help="The model every node calls (a pool model)."),
    widths: str = typer.Option("1,2,4", "--widths", help="Widths to try (parallel chains), comma-separated."),
    depths: str = typer.Option("1,2,3", "--depths", help="Depths to try (nodes per chain), comma-separated."),
    items: int = typer.Option(30, "--items", "-n", min=1, help="Test items every cell is scored on (the same ones)."),
    budget: float | None = typer.Option(None, "--budget", min=0.0, help="Hatch the cells whose planned units exceed this."),
    out_dir: Path | None = typer.Option(None, "--out", help="Pilot directory (default runs/pilot-<task>-<model>); rerun to resume."),
    as_json: bool = flags.JSON,
    run: flags.RunFlags = flags.FILLED_IN,
) -> None:
    """Score parallel chains of width w and depth d (every node MODEL, an assistant) on the same items:
    a heatmap and curves showing whether scaling is non-monotonic and whether the best depth moves."""
    grid_w, grid_d = parse_axis(widths, "--widths"), parse_axis(depths, "--depths")
    given = run.given()
    cfg = flags.new_config(run, given)
    out_dir = out_dir or _default_out(cfg.task, model)
    resuming = (out_dir / RunStore.FILE).exists()
    store = RunStore.open(out_dir) if resuming else RunStore.create(out_dir)
    try:
        if resuming and "cache" not in given.get("backend", {}) and not run.no_cache and store.get_config("cache"):
            cfg = RunConfig.model_validate(deep_merge(cfg.to_json(), {"backend": {"cache": store.get_config("cache")}}))
        settings = PilotSettings(task=cfg.task, model=model, widths=grid_w, depths=grid_d, items=items,
                                 budget=budget)
        cache_path = cfg.backend.cache_path()
        store.set_config("cache", str(cache_path) if cache_path else None)
        store.set_config("run", cfg.to_json())
        store.set_config("command", sys.argv[1:])
        with _stdout_to_stderr(as_json):
            result = _run(cfg, store, settings, show=not as_json)
    finally:
        store.close()
    paths = write_outputs(out_dir, result)
    if as_json:
        emit_json({**result.to_dict(), "statements": statements(result.analysis), "files": paths,
                   "out": str(out_dir)})
        return
    print_table(result)
    out.print(f"wrote {paths['heatmap']}, {paths['curves']} and {paths['json']}")


def _run(cfg: RunConfig, store: RunStore, settings: PilotSettings, *, show: bool) -> PilotResult:
    bar = Progress(TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn(), console=console, disable=not show)
    state: dict[str, Any] = {"task": None, "correct": 0}

    def on_event(e: dict[str, Any]) -> None:
        if e["kind"] == "start":
            state["task"] = bar.add_task(f"pilot · {e['todo']} of {e['cells']} cells to score",
                                         total=e["todo"] * e["items"])
        elif e["kind"] == "cell":
            state["cell"] = f"cell {e['width']}×{e['depth']} ({e['units']:.1f} u)"
        elif e["kind"] == "item" and state["task"] is not None:
            bar.update(state["task"], advance=1, description=state.get("cell", "pilot"))

    async def main() -> PilotResult:
        async with build_runtime(cfg, models=[settings.model]) as rt:
            if settings.model not in rt.pool.models:
                raise TaskError(f"--model {settings.model!r} is not in pool {rt.pool.name!r} "
                                f"({', '.join(rt.pool.models)}); pass --models")
            return await run_pilot(rt, store, settings, on_event)

    with bar:
        return asyncio.run(main())


__all__ = ["pilot_command", "write_outputs"]
