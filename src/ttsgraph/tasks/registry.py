"""Task names to task objects: `load_task("mmlu:anatomy")`, `load_task("jsonl:my.jsonl", grader="numeric")`.

One place resolves names and options so the CLI, the study and the server accept the same
spellings. Options a task does not take are an error (a typo must not be silently ignored).
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable

from ttsgraph.cost import TaskLengths
from ttsgraph.errors import TaskError
from ttsgraph.tasks.base import Task

BUILTIN_TASKS: tuple[str, ...] = ("math500", "gsm8k", "mmlu", "humaneval", "arithmetic")
ALIASES = {"math": "math500", "math-500": "math500", "human-eval": "humaneval", "human_eval": "humaneval"}


_FACTORIES = {
    "math500": ("ttsgraph.tasks.math", "MathTask"),
    "gsm8k": ("ttsgraph.tasks.gsm8k", "Gsm8kTask"),
    "mmlu": ("ttsgraph.tasks.mmlu", "MmluTask"),
    "humaneval": ("ttsgraph.tasks.humaneval", "HumanEvalTask"),
    "arithmetic": ("ttsgraph.tasks.arithmetic", "ArithmeticTask"),
    "jsonl": ("ttsgraph.tasks.jsonl", "JsonlTask"),
}


# The options each task takes (what `--option KEY=VALUE` accepts on every command that takes a
# task, and what `--help` and docs/tasks.md list). `load_task` checks them against the classes.
TASK_OPTIONS: dict[str, str] = {
    "jsonl:PATH": "grader (exact, numeric, choice or math), question_field, answer_field, id_field, "
                  "system_prompt, seed, search_fraction",
    "arithmetic": "seed, digits, terms, ops, size",
    "math500": "level, subject, seed, search_fraction",
    "mmlu": "subject, seed, search_fraction",
    "humaneval": "unsafe_exec, timeout, memory_mb, sandbox (bwrap or unshare), seed, search_fraction",
    "every task": "prompt_tokens, answer_tokens",
}


def options_help() -> str:
    """One line for `--option`'s help: each task's options."""
    return "; ".join(f"{name}: {keys}" for name, keys in TASK_OPTIONS.items())


def _factory(base: str) -> Callable[..., Task]:
    """The task class, imported on first use (graders and data load only for the task asked for)."""
    if base in _FACTORIES:
        module, cls = _FACTORIES[base]
        return getattr(importlib.import_module(module), cls)
    raise TaskError(f"unknown task {base!r}; known: {', '.join(BUILTIN_TASKS)}, mmlu:<subject>, jsonl:PATH")


def load_task(name: str, **options: object) -> Task:
    """Build a task by name.

    Names: `math500` (alias `math`), `gsm8k`, `mmlu` or `mmlu:<subject>`, `humaneval`, `arithmetic`,
    `jsonl:PATH`; their options are `TASK_OPTIONS`. Every task takes `prompt_tokens` /
    `answer_tokens` to override its lengths A, B. Options set to None are ignored (CLI defaults).
    """
    if not isinstance(name, str) or not name.strip():
        raise TaskError("a task name is required")
    options = {k: v for k, v in options.items() if v is not None}
    prompt_tokens = options.pop("prompt_tokens", None)
    answer_tokens = options.pop("answer_tokens", None)
    base, _, arg = name.strip().partition(":")
    base = ALIASES.get(base.lower(), base.lower())
    factory = _factory(base)
    if base == "mmlu" and arg:
        options["subject"] = arg
    elif base == "jsonl":
        if not arg:
            raise TaskError("jsonl tasks need a path: jsonl:PATH")
        options["path"] = arg
    elif arg:
        raise TaskError(f"task {base!r} takes no ':' argument (got {name!r})")
    accepted = set(inspect.signature(factory).parameters) - {"self", "name"}
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise TaskError(f"task {base!r} does not take option(s) {', '.join(unknown)}; it takes: {', '.join(sorted(accepted))}")
    try:
        task = factory(**options)
    except (TypeError, ValueError) as e:
        raise TaskError(f"task {name!r}: bad option value ({e})") from None
    if prompt_tokens is not None or answer_tokens is not None:
        task.lengths = TaskLengths(
            prompt=float(prompt_tokens) if prompt_tokens is not None else task.lengths.prompt,
            answer=float(answer_tokens) if answer_tokens is not None else task.lengths.answer,
        )
    return task


def list_tasks(names: list[str] | None = None) -> list[dict]:
    """Rows for `ttsgraph tasks`: name, items per split, A, B, grader."""
    return [load_task(n).describe() for n in (names or list(BUILTIN_TASKS))]
