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
