"""Helpers every sub-command shares: clean errors, `--json` output, pools, task lengths."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.text import Text

from ttsgraph.cost import PAPER_LENGTHS, TaskLengths
from ttsgraph.errors import TaskError, TtsGraphError
from ttsgraph.jsonutil import to_jsonable
from ttsgraph.models import ModelPool, load_pool

console = Console(stderr=True)  # human output and progress; stdout stays clean for --json
out = Console()

F = TypeVar("F", bound=Callable[..., Any])

# Flags every command that calls models shares, declared once so they mean the same everywhere.
# Defaults are None: the typed RunConfig holds the defaults, so a recipe can set what a flag omits.
OPT_OPTION = typer.Option(None, "--opt", help="Optimizer option KEY=VALUE (repeatable); unknown keys are an error.")
MAX_TOKENS_OPTION = typer.Option(None, "--max-tokens", min=1, help="Max tokens per worker node (default 256).")
TEMPERATURE_OPTION = typer.Option(None, "--temperature", min=0.0, help="Worker sampling temperature (default 0.1).")
CACHE_OPTION = typer.Option(None, "--cache", help="Response cache file (default: $TTSGRAPH_HOME or ~/.cache/ttsgraph/responses.sqlite).")
NO_CACHE_OPTION = typer.Option(False, "--no-cache", help="No response cache: call the backends for every node, store nothing.")
TIMEOUT_OPTION = typer.Option(None, "--timeout", min=0.001, help="Seconds per HTTP attempt to an OpenAI-compatible server (default 600).")
RETRIES_OPTION = typer.Option(None, "--retries", min=0, help="Retries after a 429/5xx/connection error/timeout (default 3).")
CONCURRENCY_OPTION = typer.Option(None, "--concurrency", "-c", min=1, help="Simultaneous calls per serving backend (default 4).")
JSON_OPTION = typer.Option(False, "--json", help="Print one JSON object on stdout.")


def handle_errors(fn: F) -> F:
    """Print a TtsGraphError as one red line naming what is wrong, and exit with status 2."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except TtsGraphError as exc:
            # One line, never wrapped, the message printed as text (an id like "[x]" is not markup).
            console.print(Text.assemble(("error: ", "bold red"), str(exc).replace("\n", " ")), soft_wrap=True,
                          highlight=False)
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


def emit_json(obj: Any) -> None:
    """Exactly one JSON object on stdout."""
    sys.stdout.write(json.dumps(obj, indent=2, default=to_jsonable) + "\n")
    sys.stdout.flush()


def get_pool(models: str | None) -> ModelPool:
    """`--models` is a pool name (local, paper, paper-full) or a models.toml path; default local."""
    return load_pool(models)


def task_lengths(task: str | None) -> tuple[str, TaskLengths]:
    """The task's (A, B): from the task registry when it knows the task, else the paper's constants."""
    name = task or "math"
    try:
        from ttsgraph.tasks import load_task  # imported lazily: tasks pull in graders and data

        t = load_task(name)
        return t.name, t.lengths
    except ImportError:
        pass
    key = name.split(":")[0].removesuffix("500")
    if key in PAPER_LENGTHS:
        return key, PAPER_LENGTHS[key]
    raise TaskError(f"unknown task {name!r}; known here: {', '.join(PAPER_LENGTHS)}")


def parse_pairs(pairs: list[str] | None, what: str = "task") -> dict[str, Any]:
    """`KEY=VALUE` options (`--option`, `--opt`): ints, floats and true/false are converted, the rest
    stays text. `what` names the option kind in the error."""
    options: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise TaskError(f"{what} option {pair!r} must look like KEY=VALUE")
        value: Any = raw
        if raw.lower() in ("true", "false"):
            value = raw.lower() == "true"
        else:
            for cast in (int, float):
                try:
                    value = cast(raw)
                    break
                except ValueError:
                    continue
        options[key.strip()] = value
    return options


def run_flags(**given: Any) -> dict[str, Any]:
    """The flags that were given (not None), as nested RunConfig data (`budget.nodes`, `sampling.…`)."""
    nested: dict[str, Any] = {}
    for key, value in given.items():
        if value is None or value == [] or (value is False and key == "backend.no_cache"):
            continue
        *parents, leaf = key.split(".")
        node = nested
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return nested
