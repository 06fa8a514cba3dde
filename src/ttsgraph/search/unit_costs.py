"""The integer unit costs the model-count mixes are built from: the paper's table or derived ones.

A node budget b is filled with model counts whose integer costs sum to b (SPEC §2.3). For any pool
the cost of a model is its d = 0 cost in units, rounded (at least 1), which is what the FLOPs
formula says. The paper's code did not derive them: it hard-coded a table whose 8B and 70B entries
are not the rounded FLOPs (MATH: 8B is 7.92 units but costs 9, 70B is 69.08 but costs 81). Those
numbers decide which mixes the agent is offered (at b = 12 on MATH the paper lists {3B+8B} and
{3×1B+8B}, the derived costs give {1B+3B+8B} and {4×1B+8B} instead), so a pool made of the paper's
models on the paper's tasks uses the paper's table; every other pool keeps the derived costs.
"""

from __future__ import annotations

from collections.abc import Iterable

_MATH_MMLU = {"llama-3.2-1b": 1, "llama-3.2-3b": 3, "llama-3.1-8b": 9, "llama-3.1-70b": 81,
              "gemma-3-1b": 1, "gemma-2b": 3, "gemma-7b": 9}
_HUMANEVAL = {"llama-3.2-1b": 1, "llama-3.2-3b": 4, "llama-3.1-8b": 7, "llama-3.1-70b": 63,
              "gemma-3-1b": 1, "gemma-2b": 4, "gemma-7b": 7}

PAPER_UNIT_COSTS: dict[str, dict[str, int]] = {"math": _MATH_MMLU, "mmlu": _MATH_MMLU, "humaneval": _HUMANEVAL}
"""The released code's per-model costs by task family (SPEC §2.3). HumanEval's Agent-REINFORCE mode
used 70B: 81 instead of 63; 70B fits no node budget below 63, so the difference never shows there."""


def task_family(task_name: str) -> str | None:
    """Which of the paper's tasks a task name is (math500/math, mmlu[:subject], humaneval), else None."""
    base = task_name.split(":", 1)[0].lower()
    if base in ("math", "math500"):
        return "math"
    if base in ("mmlu", "humaneval"):
        return base
    return None


def paper_unit_costs(models: Iterable[str], task_name: str) -> dict[str, int] | None:
    """The paper's table restricted to `models` when every one of them is a paper model and the task
    is one of the paper's; None otherwise (the space then derives costs from the FLOPs formula)."""
    family = task_family(task_name)
    if family is None:
        return None
    table = PAPER_UNIT_COSTS[family]
    models = list(models)
    if not models or any(m not in table for m in models):
        return None
    return {m: table[m] for m in models}


__all__ = ["PAPER_UNIT_COSTS", "paper_unit_costs", "task_family"]
