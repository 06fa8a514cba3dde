"""`ttsgraph report RUN`: the self-contained HTML report (and PNGs) of a search run or a bench."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from ttsgraph.cli.app import app
from ttsgraph.cli.common import console, emit_json, handle_errors, out


@app.command()
@handle_errors
def report(
    run: Path = typer.Argument(..., help="A run directory (ttsgraph search --out), a bench, pilot or sweep directory."),
    out_path: Path | None = typer.Option(None, "--out", "-o", help="HTML file to write (default RUN/report.html); "
                                         "PNGs are written beside it."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Write an offline HTML report: the selected graph, the search curve, accuracy vs FLOPs and
    latency with the Pareto front, per-model costs, trials, agent transcript, test result."""
    progress = Progress(SpinnerColumn(), TextColumn("{task.description}", markup=False), TimeElapsedColumn(), console=console,
                        transient=True, disable=not console.is_terminal)
    with progress:
        step = progress.add_task("report", total=None)
        from ttsgraph.report import build_report  # matplotlib: paid only by this command

        result = build_report(run, out_path, progress=lambda msg: progress.update(step, description=msg))
    if as_json:
        emit_json(result.to_dict())
        return
    if result.kind in ("pilot", "sweep"):
        out.print(Text.assemble(f"{result.kind} report: wrote ", (str(result.html_path), "bold"),
                                f" and {len(result.png_paths)} PNGs beside it"), soft_wrap=True)
        return
    table = Table(title=f"report of {result.kind} {run}", show_header=True)
    for col in ("run", "trial", "optimizer", "rule", "accuracy", "correct/items", "errors", "planned units",
                "latency s", "est. latency s"):
        table.add_column(col)
    for s in result.selected:
        table.add_row(s["run"], str(s["trial"]), s["optimizer"], "provisional" if s["provisional"] else s["rule"],
                      f"{s['accuracy']:.3f}", f"{s['correct']}/{s['items']}", str(s["errors"]),
                      f"{s['planned_units']:.2f}", "–" if s["latency"] is None else f"{s['latency']:.2f}",
                      "–" if s["estimated_latency"] is None else f"{s['estimated_latency']:.2f}")
    out.print(table)
    out.print(f"{result.trials} trials, {len(result.front)} candidate graph(s) on the Pareto front "
              "(accuracy, planned units, latency)")
    out.print(Text.assemble("wrote ", (str(result.html_path), "bold"), f" and {len(result.png_paths)} PNGs beside it"),
              soft_wrap=True)
