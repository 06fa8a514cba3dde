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

# Markup and emoji codes off: ids, model names and file paths come from users and may contain
# "[...]" or ":x:", which must print as written. Styles are given as Text/style=, never as markup.
console = Console(stderr=True, markup=False, emoji=False, highlight=False)  # human output, progress
out = Console(markup=False, emoji=False, highlight=False)  # stdout: results (exactly one JSON object with --json)

F = TypeVar("F", bound=Callable[..., Any])

EXIT_INPUT = 2  # a TtsGraphError: bad input, configuration or an unusable backend
EXIT_NOTHING_SCORED = 3  # `eval` ran, but every item errored: there is no accuracy to report


def one_line(text: str) -> str:
    """A message safe for a terminal on one line: newlines folded, control and format characters
    (NUL, a right-to-left override) and lone surrogates escaped as Python writes them."""
    return "".join(c if c.isprintable() else (" " if c in "\n\r\t" else repr(c)[1:-1]) for c in text)


def warn(message: str, style: str = "yellow") -> None:
    """One unwrapped line on stderr, printed as text."""
    console.print(Text(one_line(message), style=style), soft_wrap=True)


def handle_errors(fn: F) -> F:
    """Print a TtsGraphError as one red line naming what is wrong, and exit with status 2. With
    `--json` (the command's `as_json`), the error is also one JSON object `{"error": ...}` on
    stdout, so a script reading stdout always gets JSON; the exit status stays non-zero."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except TtsGraphError as exc:
            message = one_line(str(exc))
            if kwargs.get("as_json"):
                emit_json({"error": message})
            console.print(Text.assemble(("error: ", "bold red"), message), soft_wrap=True)
            raise typer.Exit(EXIT_INPUT) from None

    return wrapper  # type: ignore[return-value]


def emit_json(obj: Any) -> None:
    """Exactly one JSON object on stdout: indented for reading, or on one line when it is over
    a megabyte (only the compact form is written by json's C encoder; a 10,000-node graph
    indented takes seconds)."""
    text = json.dumps(obj, default=to_jsonable)
    if len(text) < 1_000_000:
        text = json.dumps(obj, indent=2, default=to_jsonable)
    emit_text(text)


def emit_text(text: str) -> None:
    """Machine-readable text (JSON, Mermaid, DOT) on stdout as written: no markup, no wrapping."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def get_pool(models: str | None) -> ModelPool:
    """`--models` is a pool name (local, paper, paper-full) or a models.toml path; default local."""
    return load_pool(models)


def task_lengths(task: str | None, options: dict[str, Any] | None = None) -> tuple[str, TaskLengths]:
    """The task's (A, B): from the task registry when it knows the task, else the paper's constants."""
    name = task or "math"
    try:
        from ttsgraph.tasks import load_task  # imported lazily: tasks pull in graders and data

        t = load_task(name, **(options or {}))
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
