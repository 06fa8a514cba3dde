"""The shared Typer application every sub-command module registers on."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="ttsgraph",
    help="Find, run, evaluate and serve compute-optimal test-time-scaling graphs of LLMs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
