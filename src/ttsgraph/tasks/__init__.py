"""Benchmarks and graders: what a search optimizes and how answers are judged.

`load_task(name, **options)` builds one; `list_tasks()` describes the built-ins. See
`tasks/base.py` for the protocol every task follows.
"""

from __future__ import annotations

from ttsgraph.tasks.base import Grade, Item, Task
from ttsgraph.tasks.registry import BUILTIN_TASKS, list_tasks, load_task

__all__ = ["BUILTIN_TASKS", "Grade", "Item", "Task", "list_tasks", "load_task"]
