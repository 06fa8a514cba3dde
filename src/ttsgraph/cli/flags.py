"""Flags shared by every command that calls models, declared once so they mean the same everywhere.

Their defaults are None: the typed `RunConfig` holds the defaults, so a recipe can set what a flag
omits and a resumed run can tell a flag that was given from one that was not. `run_flags` turns the
given ones into nested RunConfig data; `with_run_flags` adds the shared group to a command.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import typer

from ttsgraph.errors import TaskError
from ttsgraph.tasks.registry import options_help

if TYPE_CHECKING:
    from ttsgraph.config import RunConfig

F = TypeVar("F", bound=Callable[..., Any])

OPT = typer.Option(None, "--opt", help="Optimizer option KEY=VALUE (repeatable); unknown keys are an error.")
MAX_TOKENS = typer.Option(None, "--max-tokens", min=1, help="Max tokens per worker node (default 256).")
TEMPERATURE = typer.Option(None, "--temperature", min=0.0, help="Worker sampling temperature (default 0.1).")
CACHE = typer.Option(None, "--cache", help="Response cache file (default: $TTSGRAPH_HOME or ~/.cache/ttsgraph/responses.sqlite).")
NO_CACHE = typer.Option(False, "--no-cache", help="No response cache: call the backends for every node, store nothing.")
TIMEOUT = typer.Option(None, "--timeout", min=0.001, help="Seconds per HTTP attempt to an OpenAI-compatible server (default 600).")
RETRIES = typer.Option(None, "--retries", min=0, help="Retries after a 429/5xx/connection error/timeout (default 3).")
CONCURRENCY = typer.Option(None, "--concurrency", "-c", min=1, help="Simultaneous calls per serving backend (default 4).")
EXECUTOR = typer.Option(None, "--executor", help="Where model calls run: local (this process) or ray (a Ray cluster; docs/distributed.md).")
RAY_ADDRESS = typer.Option(None, "--ray-address", help="Ray cluster to join: auto or HOST:PORT (default: $RAY_ADDRESS, else a new local Ray).")
RAY_ACTORS = typer.Option(None, "--ray-actors", min=1, help="Ray actors answering model calls (default: one per Ray node).")
JSON = typer.Option(False, "--json", help="Print one JSON object on stdout.")
TASK_OPTION = typer.Option(None, "--option", "-o", help=f"Task option KEY=VALUE (repeatable), e.g. grader=numeric. {options_help()}.")
FILLED_IN: Any = None  # the default of a command's `run: RunFlags` parameter, which `with_run_flags` fills in


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


@dataclass(frozen=True)
class RunFlags:
    """The flags every model-calling command shares (task, pool, recipe, sampling, backend)."""

    config: Path | None
    task: str | None
    option: list[str] | None
    models: str | None
    max_tokens: int | None
    temperature: float | None
    cache: Path | None
    no_cache: bool
    timeout: float | None
    retries: int | None
    concurrency: int | None
    executor: str | None
    ray_address: str | None
    ray_actors: int | None

    def given(self, **more: Any) -> dict[str, Any]:
        """The given flags (and `more` run_flags keys) as nested RunConfig data."""
        from ttsgraph.cli.common import parse_pairs

        models = self.models
        if models is not None and Path(models).exists():
            models = str(Path(models).resolve())  # stored absolute, so --resume finds it anywhere
        return run_flags(**{
            "task": self.task, "task_options": parse_pairs(self.option, "task") or None, "models": models,
            "sampling.max_tokens": self.max_tokens, "sampling.temperature": self.temperature,
            "backend.cache": str(self.cache.expanduser().resolve()) if self.cache else None,
            "backend.no_cache": self.no_cache, "backend.timeout": self.timeout, "backend.retries": self.retries,
            "backend.concurrency": self.concurrency, "executor": self.executor,
            "ray_address": self.ray_address, "ray_actors": self.ray_actors, **more,
        })


_SHARED: list[tuple[str, Any, Any]] = [
    ("config", Path | None, typer.Option(None, "--config", help="A TOML recipe (examples/recipes/); flags override it.")),
    ("task", str | None, typer.Option(None, "--task", "-t", help="Task, e.g. arithmetic, math500, mmlu:anatomy, jsonl:PATH.")),
    ("option", list[str] | None, TASK_OPTION),
    ("models", str | None, typer.Option(None, "--models", help="Pool name (local, paper, paper-full) or a models.toml; default local.")),
    ("max_tokens", int | None, MAX_TOKENS), ("temperature", float | None, TEMPERATURE), ("cache", Path | None, CACHE),
    ("no_cache", bool, NO_CACHE), ("timeout", float | None, TIMEOUT), ("retries", int | None, RETRIES),
    ("concurrency", int | None, CONCURRENCY), ("executor", str | None, EXECUTOR),
    ("ray_address", str | None, RAY_ADDRESS), ("ray_actors", int | None, RAY_ACTORS),
]


def with_run_flags(fn: F) -> F:
    """Give a command the shared flags, declared once here: the command takes one `run: RunFlags`
    parameter instead of fourteen, and every command spells and documents them alike."""
    shared = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)
              for name, annotation, default in _SHARED]

    def bundle(kwargs: dict[str, Any]) -> dict[str, Any]:
        return {"run": RunFlags(**{name: kwargs.pop(name) for name, _, _ in _SHARED}), **kwargs}

    return with_task_options(_add_parameters(fn, "run", shared, bundle))


# Task options are `--option KEY=VALUE` on every command that takes a task. Their own flags
# (`eval --grader numeric`) are refused with the spelling to use, not "No such option".
_TASK_OPTION_FLAGS = ("grader", "question_field", "answer_field", "id_field", "system_prompt")


def with_task_options(fn: F) -> F:
    """Refuse `--grader`, `--question-field`, … on a command, pointing at `--option KEY=VALUE`."""
    hidden = [inspect.Parameter(f"task_flag_{name}", inspect.Parameter.KEYWORD_ONLY, annotation=str | None,
                                default=typer.Option(None, f"--{name.replace('_', '-')}", hidden=True))
              for name in _TASK_OPTION_FLAGS]

    def refuse(kwargs: dict[str, Any]) -> dict[str, Any]:
        for name in _TASK_OPTION_FLAGS:
            value = kwargs.pop(f"task_flag_{name}")
            if value is not None:
                raise TaskError(f"--{name.replace('_', '-')} is a task option: write --option {name}={value}")
        return kwargs

    return _add_parameters(fn, None, hidden, refuse)


def _add_parameters(fn: F, replaces: str | None, params: list[inspect.Parameter],
                    convert: Callable[[dict[str, Any]], dict[str, Any]]) -> F:
    """`fn` with `params` added to its CLI signature (and `replaces` taken out); `convert` turns
    the added keyword arguments back into what `fn` takes."""
    signature = inspect.signature(fn)
    own = [p for p in signature.parameters.values() if p.name != replaces]

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return fn(*args, **convert(kwargs))

    wrapper.__signature__ = signature.replace(parameters=[*own, *params])  # type: ignore[attr-defined]
    return wrapper  # type: ignore[return-value]


def new_config(run: RunFlags, given: dict[str, Any] | None = None, **more: Any) -> RunConfig:
    """The config of a new run: the recipe (`--config`), then the given flags on top."""
    from ttsgraph.config import from_sources

    if run.config is None and run.task is None:
        raise TaskError("--task is required (or a --config recipe that sets task)")
    return from_sources(run.config, given if given is not None else run.given(**more))
