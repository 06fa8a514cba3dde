"""`ttsgraph tasks`: the available tasks, their split sizes, lengths A/B and graders.

Also checks a custom JSONL file (`ttsgraph tasks --task jsonl:my.jsonl --option grader=numeric`), which
surfaces a bad record with its file and line before a long search is started.
"""

from __future__ import annotations

import typer
from rich.table import Table

from ttsgraph.cli.app import app
from ttsgraph.cli import flags
from ttsgraph.cli.common import console, emit_json, handle_errors, out, parse_pairs
from ttsgraph.tasks.registry import BUILTIN_TASKS, load_task


@app.command("tasks")
@handle_errors
@flags.with_task_options
def tasks_command(
    task: list[str] = typer.Option(None, "--task", "-t", help="Only these tasks (e.g. mmlu:anatomy, jsonl:PATH); default: the built-ins."),
    option: list[str] | None = flags.TASK_OPTION,
    as_json: bool = flags.JSON,
) -> None:
    """List tasks: items in the search and test splits, prompt/answer lengths (A, B) and grader.
    `--option` applies to every task listed (check a JSONL file with `--option grader=numeric`)."""
    names = list(task) if task else list(BUILTIN_TASKS)
    options = parse_pairs(option, "task")
    rows = []
    with console.status("loading tasks…") as status:
        for name in names:
            status.update(f"loading {name}…")
            rows.append(load_task(name, **options).describe())
    if as_json:
        emit_json({"tasks": rows})
        return
    table = Table(title="tasks")
    for col in ("name", "search", "test", "items", "A (prompt tokens)", "B (answer tokens)", "grader"):
        table.add_column(col, justify="right" if col not in ("name", "grader") else "left")
    for r in rows:
        table.add_row(r["name"], str(r["search"]), str(r["test"]), str(r["items"]), f"{r['A']:g}", f"{r['B']:g}", r["grader"])
    out.print(table)
