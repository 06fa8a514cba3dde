"""Pareto fronts over trials: accuracy up, planned FLOPs down, latency down.

A search with a joint objective has no single best graph: a graph that is a little less accurate
but twice as fast can be the right pick. The non-dominated set is the honest answer to "which
graphs are worth considering", so the study's `pareto` selection picks from it and the report
highlights it. Objectives are named, so the same code serves (accuracy, units, latency), any
two of them, or a user's own columns.

Points may be mappings (`point["accuracy"]`), objects (`point.accuracy`), or anything else with a
callable getter per objective. A point whose value for some objective is missing or NaN cannot be
compared and is never on the front (it is reported by `incomparable`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

T = TypeVar("T")

Objective = str | Callable[[Any], Any]

#: The trade-off the paper's joint objective cares about (SPEC §4.5), in trial/Evaluation field names.
DEFAULT_MAXIMIZE: tuple[str, ...] = ("accuracy",)
DEFAULT_MINIMIZE: tuple[str, ...] = ("planned_units", "latency")


def _get(point: Any, objective: Objective) -> float | None:
    """The value of one objective for one point, or None if it has none (missing, None, NaN)."""
    if callable(objective):
        value = objective(point)
    elif isinstance(point, Mapping):
        value = point.get(objective)
    else:
        value = getattr(point, objective, None)
    return as_number(value)


def as_number(value: Any) -> float | None:
    """`value` as a float, or None when it is missing, not a number, or NaN."""
    if value is None:
        return None
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f


def _vector(point: Any, maximize: Sequence[Objective], minimize: Sequence[Objective]) -> tuple[float, ...] | None:
    """Objective values turned so that larger is better everywhere; None if any is missing."""
    values: list[float] = []
    for obj in maximize:
        v = _get(point, obj)
        if v is None:
            return None
        values.append(v)
    for obj in minimize:
        v = _get(point, obj)
        if v is None:
            return None
        values.append(-v)
    return tuple(values)


def _check(maximize: Sequence[Objective], minimize: Sequence[Objective]) -> None:
    if not maximize and not minimize:
        raise ValueError("a Pareto front needs at least one objective to maximize or minimize")
    if isinstance(maximize, str) or isinstance(minimize, str):
        raise TypeError("pass objectives as a sequence of names, e.g. maximize=('accuracy',)")


def dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    """Whether vector `a` (larger is better in every coordinate) Pareto-dominates `b`:
    at least as good everywhere and strictly better somewhere."""
    if len(a) != len(b):
        raise ValueError(f"vectors of different lengths: {len(a)} and {len(b)}")
    return all(x >= y for x, y in zip(a, b)) and any(x > y for x, y in zip(a, b))


def pareto_indices(
    points: Sequence[Any],
    maximize: Sequence[Objective] = DEFAULT_MAXIMIZE,
    minimize: Sequence[Objective] = DEFAULT_MINIMIZE,
) -> list[int]:
    """Indices (ascending) of the non-dominated points. Points with identical objective values
    are all kept: neither dominates the other. O(n²·k), fine for the hundreds of trials a search has."""
    _check(maximize, minimize)
    vectors = [_vector(p, maximize, minimize) for p in points]
    valid = [(i, v) for i, v in enumerate(vectors) if v is not None]
    front: list[int] = []
    for i, vi in valid:
        if not any(dominates(vj, vi) for j, vj in valid if j != i):
            front.append(i)
    return front


def pareto_front(
    points: Sequence[T],
    maximize: Sequence[Objective] = DEFAULT_MAXIMIZE,
    minimize: Sequence[Objective] = DEFAULT_MINIMIZE,
) -> list[T]:
    """The non-dominated points, in their input order (default objectives: accuracy up,
    planned units down, latency down)."""
    return [points[i] for i in pareto_indices(points, maximize, minimize)]


def incomparable(
    points: Sequence[T],
    maximize: Sequence[Objective] = DEFAULT_MAXIMIZE,
    minimize: Sequence[Objective] = DEFAULT_MINIMIZE,
) -> list[T]:
    """Points lacking a value for some objective (e.g. a trial whose every item errored has no latency)."""
    _check(maximize, minimize)
    return [p for p in points if _vector(p, maximize, minimize) is None]


def on_front(
    point: Any,
    points: Sequence[Any],
    maximize: Sequence[Objective] = DEFAULT_MAXIMIZE,
    minimize: Sequence[Objective] = DEFAULT_MINIMIZE,
) -> bool:
    """Whether `point` is dominated by none of `points` (it need not be one of them)."""
    _check(maximize, minimize)
    v = _vector(point, maximize, minimize)
    if v is None:
        return False
    others = (_vector(p, maximize, minimize) for p in points)
    return not any(o is not None and dominates(o, v) for o in others)


def select_on_front(
    points: Sequence[T],
    maximize: Sequence[Objective] = DEFAULT_MAXIMIZE,
    minimize: Sequence[Objective] = DEFAULT_MINIMIZE,
    prefer: str = "knee",
) -> T:
    """One point of the front, for a search that must return a single graph.

    `prefer="first"`: best on the first objective (maximize before minimize), ties broken by the
    next objectives in order: the most accurate graph, then the cheapest, then the fastest among
    equals. `prefer="knee"`: the front point closest to the ideal point (best value of every
    objective) after scaling each objective to [0, 1] over the front; a balanced trade-off, ties
    broken as for "first". Either way the result is on the front. Raises ValueError if no point
    is comparable.
    """
    _check(maximize, minimize)
    idx = pareto_indices(points, maximize, minimize)
    if not idx:
        raise ValueError("no point has a value for every objective; the front is empty")
    vecs = {i: _vector(points[i], maximize, minimize) for i in idx}
    assert all(v is not None for v in vecs.values())
    lexi = {i: tuple(vecs[i]) for i in idx}  # type: ignore[arg-type]
    if prefer == "first":
        best = max(idx, key=lambda i: (lexi[i], -i))
        return points[best]
    if prefer != "knee":
        raise ValueError(f"unknown preference {prefer!r}: expected 'knee' or 'first'")
    k = len(next(iter(lexi.values())))
    lo = [min(lexi[i][d] for i in idx) for d in range(k)]
    hi = [max(lexi[i][d] for i in idx) for d in range(k)]

    def distance(i: int) -> float:
        total = 0.0
        for d in range(k):
            span = hi[d] - lo[d]
            gap = 0.0 if span == 0 else (hi[d] - lexi[i][d]) / span
            total += gap * gap
        return math.sqrt(total)

    best = min(idx, key=lambda i: (distance(i), tuple(-x for x in lexi[i]), i))
    return points[best]
