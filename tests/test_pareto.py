"""Pareto fronts: dominance, ties, missing values, getters, and the single pick from the front."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import pytest

from ttsgraph.pareto import (
    dominates,
    incomparable,
    on_front,
    pareto_front,
    pareto_indices,
    select_on_front,
)


@dataclass
class Trial:
    accuracy: float
    planned_units: float
    latency: float | None
    name: str = ""


def brute_front(vectors: list[tuple[float, ...]]) -> list[int]:
    """Reference: i is on the front iff no j is >= everywhere and > somewhere (larger is better)."""
    out = []
    for i, a in enumerate(vectors):
        beaten = False
        for j, b in enumerate(vectors):
            if j != i and all(y >= x for x, y in zip(a, b)) and any(y > x for x, y in zip(a, b)):
                beaten = True
        if not beaten:
            out.append(i)
    return out


def test_dominates_needs_strictly_better_somewhere() -> None:
    assert dominates((1, 2), (1, 1))
    assert not dominates((1, 1), (1, 1))
    assert not dominates((2, 0), (1, 1))
    with pytest.raises(ValueError):
        dominates((1,), (1, 2))


def test_three_objective_front_on_objects() -> None:
    trials = [
        Trial(0.8, 10, 3.0, "accurate"),
        Trial(0.6, 4, 1.0, "cheap-fast"),
        Trial(0.6, 5, 1.5, "dominated by cheap-fast"),
        Trial(0.8, 12, 3.5, "dominated by accurate"),
        Trial(0.7, 4, 2.0, "mid: cheaper than accurate, more accurate than cheap-fast"),
        Trial(0.9, 30, 9.0, "most accurate"),
    ]
    names = [t.name for t in pareto_front(trials)]
    assert names == ["accurate", "cheap-fast", "mid: cheaper than accurate, more accurate than cheap-fast",
                     "most accurate"]


def test_two_objectives_change_the_front() -> None:
    trials = [Trial(0.8, 10, 1.0), Trial(0.8, 4, 5.0), Trial(0.5, 1, 0.5)]
    assert pareto_indices(trials, maximize=("accuracy",), minimize=("latency",)) == [0, 2]
    assert pareto_indices(trials, maximize=("accuracy",), minimize=("planned_units",)) == [1, 2]


def test_identical_points_are_all_kept() -> None:
    pts = [{"accuracy": 0.5, "planned_units": 3, "latency": 1.0}] * 3
    assert pareto_indices(pts) == [0, 1, 2]


def test_missing_or_nan_values_are_never_on_the_front() -> None:
    pts = [
        {"accuracy": 1.0, "planned_units": 1, "latency": None},
        {"accuracy": 1.0, "planned_units": 1, "latency": float("nan")},
        {"accuracy": 0.2, "planned_units": 9, "latency": 9.0},
        {"accuracy": 0.1, "planned_units": 9},
    ]
    assert pareto_indices(pts) == [2]
    assert len(incomparable(pts)) == 3
    assert not on_front(pts[0], pts)


def test_callable_getters_and_custom_objectives() -> None:
    pts = [(0.5, 2.0), (0.6, 3.0), (0.4, 3.0)]
    idx = pareto_indices(pts, maximize=(lambda p: p[0],), minimize=(lambda p: p[1],))
    assert idx == [0, 1]


def test_objective_names_must_be_a_sequence() -> None:
    with pytest.raises(TypeError):
        pareto_front([{"accuracy": 1}], maximize="accuracy", minimize=())  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        pareto_front([{"accuracy": 1}], maximize=(), minimize=())


@pytest.mark.parametrize("seed", range(8))
def test_matches_brute_force_on_random_points(seed: int) -> None:
    rng = random.Random(seed)
    pts = [{"accuracy": rng.choice([0, 0.25, 0.5, 0.75, 1.0]), "planned_units": rng.randint(1, 6),
            "latency": round(rng.uniform(0, 3), 1)} for _ in range(40)]
    vectors = [(p["accuracy"], -p["planned_units"], -p["latency"]) for p in pts]
    assert pareto_indices(pts) == brute_front(vectors)
    front = pareto_front(pts)
    # every point off the front is dominated by some front point
    for p in pts:
        assert on_front(p, pts) == any(p is q for q in front)


@pytest.mark.parametrize("prefer", ["knee", "first"])
@pytest.mark.parametrize("seed", range(5))
def test_selection_is_always_on_the_front(prefer: str, seed: int) -> None:
    rng = random.Random(100 + seed)
    pts = [Trial(rng.random(), rng.uniform(1, 18), rng.uniform(0.1, 8)) for _ in range(25)]
    chosen = select_on_front(pts, prefer=prefer)
    assert on_front(chosen, pts)
    assert any(chosen is p for p in pareto_front(pts))


def test_first_prefers_accuracy_then_cost_then_speed() -> None:
    pts = [Trial(0.9, 10, 2.0, "a"), Trial(0.9, 8, 3.0, "b"), Trial(0.9, 8, 2.5, "c"), Trial(0.5, 1, 0.1, "d")]
    assert select_on_front(pts, prefer="first").name == "c"


def test_knee_picks_the_balanced_point() -> None:
    pts = [
        Trial(1.0, 18, 10.0, "slow and accurate"),
        Trial(0.9, 4, 1.5, "knee"),
        Trial(0.1, 1, 0.5, "fast and wrong"),
    ]
    assert select_on_front(pts, prefer="knee").name == "knee"
    assert select_on_front(pts, prefer="first").name == "slow and accurate"


def test_select_on_empty_or_incomparable_raises() -> None:
    with pytest.raises(ValueError):
        select_on_front([])
    with pytest.raises(ValueError):
        select_on_front([{"accuracy": math.nan, "planned_units": 1, "latency": 1}])
    with pytest.raises(ValueError):
        select_on_front([Trial(1, 1, 1)], prefer="best")
