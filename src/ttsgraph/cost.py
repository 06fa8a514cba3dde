"""FLOPs of a graph: SPEC's Theorem 1, planned and measured costs, normalized units, budgets.

Budgets are hardware-independent: FLOPs of a forward pass with a KV cache (a multiply-add is
2 FLOPs). A node's prompt holds the question plus one full answer per predecessor, so its cost
grows quadratically with its in-degree, which is what makes wide fusion expensive.

Units: 1 unit = one call of the pool's reference model with no predecessors at the task's
average lengths, so "budget 18" on MATH with the paper's pool means what the paper means.
"""

from __future__ import annotations

from dataclasses import dataclass

from ttsgraph.errors import BudgetError
from ttsgraph.graph import Graph, fully_connected
from ttsgraph.models import ModelPool, ModelSpec


@dataclass(frozen=True)
class TaskLengths:
    """A task's average prompt tokens A and answer tokens B (SPEC §2.2)."""

    prompt: float
    answer: float


# The paper code's constants (SPEC §2.2); other tasks measure or estimate their own.
PAPER_LENGTHS: dict[str, TaskLengths] = {
    "math": TaskLengths(202, 275),
    "mmlu": TaskLengths(213, 215),
    "humaneval": TaskLengths(180, 115),
}


def prefill_flops(spec: ModelSpec, n_prompt: float) -> float:
    """Reading N_p prompt tokens: 2·M·N_p + 2·L·D·N_p·(N_p + 1)."""
    return 2 * spec.params * n_prompt + 2 * spec.layers * spec.hidden * n_prompt * (n_prompt + 1)


def decode_flops(spec: ModelSpec, n_prompt: float, n_decode: float) -> float:
    """Writing N_d tokens against a KV cache: 2·M·N_d + 2·L·D·N_d·(2·N_p + N_d + 1)."""
    return 2 * spec.params * n_decode + 2 * spec.layers * spec.hidden * n_decode * (2 * n_prompt + n_decode + 1)


def node_flops(spec: ModelSpec, n_prompt: float, n_decode: float) -> float:
    """Theorem 1: the FLOPs of one LLM call."""
    return prefill_flops(spec, n_prompt) + decode_flops(spec, n_prompt, n_decode)


def planned_node_flops(spec: ModelSpec, lengths: TaskLengths, in_degree: int) -> float:
    """Planned cost of a node reading the question and `in_degree` full answers: N_p = A + d·B, N_d = B."""
    return node_flops(spec, lengths.prompt + in_degree * lengths.answer, lengths.answer)


def measured_node_flops(spec: ModelSpec, prompt_tokens: int, completion_tokens: int) -> float:
    """Cost of a call that really happened, from the backend's token counts."""
    return node_flops(spec, prompt_tokens, completion_tokens)


def unit_flops(pool: ModelPool, lengths: TaskLengths) -> float:
    """FLOPs of one unit: the reference model, no predecessors, task-average lengths."""
    return planned_node_flops(pool.spec(pool.reference), lengths, 0)


def planned_graph_flops(graph: Graph, pool: ModelPool, lengths: TaskLengths) -> dict[str, float]:
    """Planned FLOPs per node. Every node listed counts, so prune dead nodes first. A node that
    calls no model (a vote) costs 0 however many predecessors it reads; a node it feeds reads one
    answer from it, like from any predecessor."""
    return {n.id: 0.0 if n.model is None else planned_node_flops(pool.spec(n.model), lengths, graph.in_degree(n.id))
            for n in graph.nodes}


def planned_units(graph: Graph, pool: ModelPool, lengths: TaskLengths) -> float:
    return sum(planned_graph_flops(graph, pool, lengths).values()) / unit_flops(pool, lengths)


def reference_graph(b: int, pool: ModelPool) -> Graph:
    """SPEC §2.3: b reference-model nodes, node i feeding every j > i, plus the output model fed by all b."""
    if b < 1:
        raise BudgetError(f"a node budget must be >= 1, got {b}")
    return fully_connected([pool.reference] * b, pool.output)


def reference_bound_units(b: int, pool: ModelPool, lengths: TaskLengths) -> float:
    """The budget in units that a node budget b stands for (the reference graph's planned cost)."""
    return planned_units(reference_graph(b, pool), pool, lengths)


@dataclass(frozen=True)
class Budget:
    """A compute budget in normalized units (and, when given that way, the node budget b it came from)."""

    units: float
    nodes: int | None = None

    @classmethod
    def from_nodes(cls, b: int, pool: ModelPool, lengths: TaskLengths) -> Budget:
        return cls(reference_bound_units(b, pool, lengths), b)

    def to_dict(self) -> dict[str, float | int | None]:
        return {"units": self.units, "nodes": self.nodes}


MAX_NODE_BUDGET = 256
LABEL_SLACK = 1.0
LABEL_SLACK_FRACTION = 0.05
"""A units budget less than 1 unit (and 5% of the bound, so small pools with bounds a unit apart
are not warned at every budget) below a reference bound is probably the paper's rounded label for
it: the paper's "42" on MATH is b = 8's 42.96, yet 42 units only pays for b = 7."""


def meant_node_budget(units: float, pool: ModelPool, lengths: TaskLengths) -> int | None:
    """The b whose reference bound lies just above `units` (see `LABEL_SLACK`): the node budget a
    user who typed the paper's rounded label meant, or None when `units` is not such a label."""
    for b in range(1, MAX_NODE_BUDGET + 1):
        bound = reference_bound_units(b, pool, lengths)
        if bound > units + 1e-9:
            return b if bound - units < min(LABEL_SLACK, LABEL_SLACK_FRACTION * bound) else None
    return None


def units_budget(units: float, pool: ModelPool, lengths: TaskLengths) -> Budget:
    """A budget given in units, with a warning when it sits just below a reference bound: the graphs
    of that b then do not fit, and the search works at b − 1."""
    import warnings

    b = meant_node_budget(units, pool, lengths)
    if b is not None:
        bound = reference_bound_units(b, pool, lengths)
        warnings.warn(f"--budget {units:g} is {bound - units:.2f} units below the b = {b} reference bound "
                      f"({bound:.2f}), so it buys b = {b - 1}; for the paper's b = {b} give --budget-nodes {b} "
                      f"(or --budget {bound:.2f})", stacklevel=2)
    return Budget(float(units))
