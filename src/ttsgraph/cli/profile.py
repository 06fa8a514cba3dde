"""`ttsgraph profile`: the Insight-1 table for a task and pool (each model alone, equal-budget mixes).

Measured once and reused: the profile is stored as JSON (in `--out RUN/profile.json` or under
`~/.cache/ttsgraph/profiles/`) keyed by task, pool, items, seed and sampling settings; a second
identical command prints the stored table without calling any model (`--refresh` re-measures).
Agent-REINFORCE's initialization finds it by task and pool. `--preset paper` prints the paper's
own table (SPEC §5) instead of measuring, for the paper's pool.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from ttsgraph.cli.app import app
from ttsgraph.cli import flags
from ttsgraph.cli.common import console, emit_json, handle_errors, out
from ttsgraph.errors import TtsGraphError
from ttsgraph.models import load_pool
from ttsgraph.runtime import build_runtime, pinned_task
from ttsgraph.profile import (
    Profile,
    load_profile,
    measure_profile,
    paper_profile,
    profile_key,
    profile_path,
    save_profile,
)



def _pct(x: Any) -> str:
    return "n/a" if x is None else f"{100 * float(x):.0f}%"


def print_profile(prof: Profile, path: Path | None, reused: bool) -> None:
    title = f"profile — {prof.task}{' (' + prof.task_config + ')' if prof.task_config else ''}, pool {prof.pool}"
    table = Table(title=title)
    for col in ("graph", "accuracy", "95% CI", "correct / scored", "errors"):
        table.add_column(col, justify="left" if col == "graph" else "right")
    for model, row in prof.singles.items():
        ci = row.get("ci")
        table.add_row(f"{model} alone", _pct(row.get("accuracy")), f"{_pct(ci[0])}–{_pct(ci[1])}" if ci else "",
                      f"{row.get('correct', '')} / {row.get('scored', '')}", str(row.get("errors", "")))
    for row in prof.mixes:
        ci = row.get("ci")
        label = " + ".join(f"{n}×{m}" for m, n in row["counts"].items())
        table.add_row(label, _pct(row.get("accuracy")), f"{_pct(ci[0])}–{_pct(ci[1])}" if ci else "",
                      f"{row.get('correct', '')} / {row.get('scored', '')}", str(row.get("errors", "")))
    out.print(table)
    line = f"{prof.source} on {prof.items} search items"
    if prof.mix_budget:
        line += f"; mixes at equal budget ({prof.mix_budget})"
    if prof.lengths:
        line += f"; lone calls average {prof.lengths['prompt']:.0f} prompt / {prof.lengths['answer']:.0f} answer tokens"
    out.print(line)
    if path is not None:
        out.print(f"{'reused' if reused else 'stored'}: {path}")


@app.command("profile")
@handle_errors
@flags.with_run_flags
def profile_command(
    items: int = typer.Option(5, "--items", "-n", min=1, help="Search items per graph."),
    mixes: int = typer.Option(4, "--mixes", min=0, help="How many equal-budget mixes to score besides the single models."),
    mix_nodes: int | None = typer.Option(None, "--mix-nodes", min=1, help="Node budget b of the mixes (default: largest model cost up to 9, at least 3)."),
    seed: int | None = typer.Option(None, "--seed", help="Seed of the item choice and the mixes' random graphs (default 0)."),
    out_dir: Path | None = typer.Option(None, "--out", help="Store as OUT/profile.json (default: ~/.cache/ttsgraph/profiles/)."),
    refresh: bool = typer.Option(False, "--refresh", help="Measure again even if a stored profile matches."),
    preset: str | None = typer.Option(None, "--preset", help="'paper': the paper's Insight-1 table instead of measuring."),
    as_json: bool = flags.JSON,
    run: flags.RunFlags = flags.FILLED_IN,
) -> None:
    """Score each pool model alone and a few equal-budget mixes on search items (Insight 1); store and reuse."""
    cfg = flags.new_config(run, seed=seed)
    if preset is not None:
        if preset != "paper":
            raise TtsGraphError(f"unknown preset {preset!r}; available: paper")
        pool = load_pool(cfg.models)
        prof = paper_profile(cfg.task, pool)
        if prof is None:
            raise TtsGraphError(f"the paper has no Insight-1 numbers for task {cfg.task!r} with pool {pool.name!r} "
                                "(it covers math500, mmlu and humaneval with the Llama models of the paper pool)")
        if as_json:
            emit_json({**prof.to_dict(), "path": None, "reused": False})
        else:
            print_profile(prof, None, False)
        return
    task_obj, pool = pinned_task(cfg), load_pool(cfg.models)
    params = cfg.sampling.params()
    key = profile_key(task_obj, pool, items=items, seed=cfg.seed, params=params, mixes=mixes, mix_nodes=mix_nodes)
    path = profile_path(task_obj, pool, key, out_dir)
    reused = False
    prof: Profile | None = None
    if path.is_file() and not refresh:
        stored = load_profile(path)
        if stored.key == key:
            prof, reused = stored, True
    if prof is None:
        progress = Progress(SpinnerColumn(), TextColumn("{task.description}", style="progress.description", markup=False), BarColumn(),
                            MofNCompleteColumn(), TimeElapsedColumn(), console=console, transient=as_json)
        with progress:
            bar = progress.add_task("profiling", total=None)

            def on_progress(label: str, done: int, total: int) -> None:
                progress.update(bar, completed=done, total=total, description=label)

            async def main() -> Profile:
                async with build_runtime(cfg) as rt:
                    return await measure_profile(rt.task, rt.pool, rt.evaluator, items=items, seed=cfg.seed,
                                                 mixes=mixes, mix_nodes=mix_nodes, params=params,
                                                 progress=on_progress)

            prof = asyncio.run(main())
        save_profile(prof, path)
    if as_json:
        emit_json({**prof.to_dict(), "path": str(path), "reused": reused})
    else:
        print_profile(prof, path, reused)


__all__ = ["profile_command", "print_profile"]
