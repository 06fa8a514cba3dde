"""The paper's width × depth pilot (SPEC §5, Insights 2–3): parallel chains of one model, scored paired.

Every cell (w, d) is `parallel_chains(w, d, model)`: w independent chains of d assistant nodes, each
chain's last node feeding the output node (an assistant of the same model) — the released code's
DepthParallelSwarm / WidthChainSwarm with every role IO. All cells are scored on the *same* items,
so two cells are compared item by item (a paired CI), and identical requests across cells draw the
same samples from the response cache (chain 1 of a 4 × 3 cell is the 1 × 3 cell's chain).

The results live in a real run store (`OUT/run.sqlite`, one trial of kind "pilot" per cell, with
`iteration = width`, `position = depth`), so a rerun with the same `OUT` skips finished cells and an
interrupted cell's finished items come back from the cache. `analyse` turns the cells into the two
statements the paper makes: whether scaling is non-monotonic (a curve peaks before its largest
setting, Insight 2) and whether the best depth moves with width (Insight 3).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from ttsgraph.cost import planned_units
from ttsgraph.errors import TaskError, TtsGraphError
from ttsgraph.evaluator import evaluate_one
from ttsgraph.executor import ItemResult
from ttsgraph.graph import Graph, parallel_chains
from ttsgraph.search.base import Evaluation
from ttsgraph.stats import paired_difference_ci, wilson_interval
from ttsgraph.store import RunStore

KIND = "pilot"
MAX_AXIS = 16
"""Largest width or depth accepted: a 16 × 16 cell is 257 calls per item, already hours here."""


@dataclass(frozen=True)
class PilotSettings:
    """What a pilot measures. A rerun into the same directory must agree on everything but the grid."""

    task: str
    model: str
    widths: tuple[int, ...]
    depths: tuple[int, ...]
    items: int
    split: str = "test"
    budget: float | None = None

    def identity(self) -> dict[str, Any]:
        """The fields a resumed pilot must share with the stored one (the grid may grow)."""
        return {"task": self.task, "model": self.model, "items": self.items, "split": self.split}


@dataclass
class Cell:
    """One (width, depth) cell: its planned cost and per-item 0/1 outcomes in the pilot's item order."""

    width: int
    depth: int
    units: float
    outcomes: list[int]
    errors: int = 0
    seconds: float = 0.0
    over_budget: bool = False

    @property
    def accuracy(self) -> float:
        return sum(self.outcomes) / len(self.outcomes) if self.outcomes else 0.0

    @property
    def ci(self) -> tuple[float, float]:
        return wilson_interval(sum(self.outcomes), len(self.outcomes))

    def to_dict(self) -> dict[str, Any]:
        return {"width": self.width, "depth": self.depth, "planned_units": self.units,
                "accuracy": self.accuracy, "ci": list(self.ci), "correct": sum(self.outcomes),
                "items": len(self.outcomes), "errors": self.errors, "seconds": self.seconds,
                "over_budget": self.over_budget}


@dataclass
class PilotResult:
    settings: PilotSettings
    item_ids: list[str]
    cells: list[Cell]
    skipped: int = 0  # cells found finished in the store
    analysis: dict[str, Any] = field(default_factory=dict)

    def cell(self, width: int, depth: int) -> Cell:
        for c in self.cells:
            if (c.width, c.depth) == (width, depth):
                return c
        raise KeyError((width, depth))

    def to_dict(self) -> dict[str, Any]:
        return {"settings": {**asdict(self.settings), "widths": list(self.settings.widths),
                             "depths": list(self.settings.depths)},
                "item_ids": self.item_ids, "cells": [c.to_dict() for c in self.cells],
                "skipped_cells": self.skipped, "analysis": self.analysis}


def parse_axis(text: str, flag: str) -> tuple[int, ...]:
    """`1,2,4` → (1, 2, 4): distinct positive integers, sorted; a bad list is a one-line error."""
    values = []
    for part in text.split(","):
        part = part.strip()
        if not part.isdigit() or not 1 <= int(part) <= MAX_AXIS:
            raise TaskError(f"{flag}: {part!r} is not an integer from 1 to {MAX_AXIS} (give e.g. {flag} 1,2,4)")
        values.append(int(part))
    if not values:
        raise TaskError(f"{flag}: give at least one value")
    return tuple(sorted(set(values)))


def grid(settings: PilotSettings, pool: Any, lengths: Any) -> list[tuple[int, int, Graph, float]]:
    """Every cell's (width, depth, graph, planned units), widths outer, depths inner."""
    out = []
    for w in settings.widths:
        for d in settings.depths:
            g = parallel_chains(w, d, settings.model)
            out.append((w, d, g, planned_units(g, pool, lengths)))
    return out


def _check_resume(store: RunStore, settings: PilotSettings) -> None:
    stored = store.get_config("pilot")
    if stored is None:
        if store.trials():
            raise TtsGraphError(f"{store.path}: holds a search run, not a pilot; choose another --out")
        return
    for key, value in settings.identity().items():
        if stored.get(key) != value:
            raise TtsGraphError(f"{store.path}: the stored pilot has {key} = {stored.get(key)!r}, not {value!r}; "
                                "rerun with the same settings or choose another --out")


def _outcomes(results: Sequence[Any], item_ids: list[str]) -> tuple[list[int], int]:
    by_id = {str(r["item_id"] if isinstance(r, dict) else r.item_id): r for r in results}
    outcomes, errors = [], 0
    for i in item_ids:
        r = by_id[i]
        correct = r["correct"] if isinstance(r, dict) else r.correct
        error = r["error"] if isinstance(r, dict) else r.error
        outcomes.append(int(bool(correct)))
        errors += int(error is not None)
    return outcomes, errors


OnEvent = Callable[[dict[str, Any]], None]


async def run_pilot(rt: Any, store: RunStore, settings: PilotSettings, on_event: OnEvent | None = None) -> PilotResult:
    """Score every cell not yet in `store` on the pilot's items (one cell at a time, stored as it
    finishes), then read all cells back from the store and analyse them."""
    if settings.model not in rt.pool.models:
        raise TtsGraphError(f"--model {settings.model!r} is not in pool {rt.pool.name!r} ({', '.join(rt.pool.models)})")
    _check_resume(store, settings)
    items = rt.task.items(settings.split)[: settings.items]
    if len(items) < settings.items:
        raise TaskError(f"task {settings.task!r} has {len(items)} items in split {settings.split!r}, "
                        f"fewer than --items {settings.items}")
    item_ids = [str(i.id) for i in items]
    stored_ids = store.get_config("pilot_item_ids")
    if stored_ids is not None and stored_ids != item_ids:
        raise TtsGraphError(f"{store.path}: the task's first {settings.items} items changed since the pilot began")
    store.set_config("pilot", {**settings.identity(), "widths": list(settings.widths),
                               "depths": list(settings.depths), "budget": settings.budget})
    store.set_config("pilot_item_ids", item_ids)
    store.set_config("pool", rt.pool.to_dict())
    done = {(t.iteration, t.position): t for t in store.trials(KIND)}
    cells_plan = grid(settings, rt.pool, rt.task.lengths)
    todo = [c for c in cells_plan if (c[0], c[1]) not in done]
    emit = on_event or (lambda _e: None)
    emit({"kind": "start", "cells": len(cells_plan), "todo": len(todo), "items": len(items)})
    for w, d, g, units in todo:
        emit({"kind": "cell", "width": w, "depth": d, "units": units})
        started = time.perf_counter()
        results: list[ItemResult] = await evaluate_one(
            rt.evaluator, g, items, on_result=lambda r: emit({"kind": "item", "correct": r.correct}))
        seconds = time.perf_counter() - started
        outcomes, errors = _outcomes(results, item_ids)
        scored = len(items) - errors
        ok = [r for r in results if r.error is None]
        latency = sum(r.critical_path for r in ok) / len(ok) if ok else 0.0
        evaluation = Evaluation(trial=len(done), graph=g, accuracy=sum(outcomes) / scored if scored else 0.0,
                                utility=sum(outcomes) / len(items), correct=sum(outcomes), scored=scored,
                                errors=errors, item_ids=item_ids, planned_units=units, measured_units=0.0,
                                latency=latency, meta={"width": w, "depth": d}, candidate=False)
        store.add_trial(evaluation, iteration=w, position=d, optimizer=KIND, seed=0, results=results,
                        kind=KIND, eval_seconds=seconds)
        done[(w, d)] = store.trials(KIND)[-1]
    cells = []
    for w, d, _g, units in cells_plan:
        trial = done[(w, d)]
        outcomes, errors = _outcomes(store.item_results(trial.id), item_ids)
        cells.append(Cell(w, d, units, outcomes, errors, trial.eval_seconds,
                          settings.budget is not None and units > settings.budget + 1e-9))
    result = PilotResult(settings, item_ids, cells, skipped=len(cells_plan) - len(todo))
    result.analysis = analyse(result)
    return result


def _best(cells: Sequence[Cell]) -> Cell:
    """The most accurate cell; ties go to the cheapest (the first in axis order)."""
    return max(cells, key=lambda c: (c.accuracy, -c.units))


def _curve(cells: Sequence[Cell], axis: str, fixed: int, other: str) -> dict[str, Any]:
    """One curve of the grid: accuracies along `axis` at `other` = fixed, its peak and whether it
    is non-monotonic (peaks before its largest setting, and the largest setting scores less), with
    the paired CI of (peak − last)."""
    line = sorted((c for c in cells if getattr(c, other) == fixed), key=lambda c: getattr(c, axis))
    peak, last = _best(line), line[-1]
    diff = paired_difference_ci(peak.outcomes, last.outcomes) if peak is not last else None
    return {other: fixed, "points": [{axis: getattr(c, axis), "accuracy": c.accuracy} for c in line],
            f"best_{axis}": getattr(peak, axis), "non_monotonic": diff is not None and diff.mean > 0,
            "drop_after_peak": None if diff is None else {"mean": diff.mean, "low": diff.low, "high": diff.high,
                                                          "significant": diff.low > 0}}


def analyse(result: PilotResult) -> dict[str, Any]:
    """Insight 2 (non-monotonic scaling) and Insight 3 (best depth moves with width), from the cells.

    A statement is "significant" only where the paired 95 % CI of the drop excludes 0; with few items
    a drop of a few points is noise, and the output says so rather than claiming the insight."""
    cells = result.cells
    widths, depths = result.settings.widths, result.settings.depths
    by_width = [_curve(cells, "depth", w, "width") for w in widths] if len(depths) > 1 else []
    by_depth = [_curve(cells, "width", d, "depth") for d in depths] if len(widths) > 1 else []
    curves = by_width + by_depth
    best = _best(cells)
    affordable = [c for c in cells if not c.over_budget]
    best_depths = {c["width"]: c["best_depth"] for c in by_width}
    moves = len(set(best_depths.values())) > 1
    base = result.cell(widths[0], depths[0])
    diff = paired_difference_ci(best.outcomes, base.outcomes)
    return {
        "best": {"width": best.width, "depth": best.depth, "accuracy": best.accuracy, "planned_units": best.units},
        "best_within_budget": (None if not affordable else
                               {k: getattr(_best(affordable), a) for k, a in
                                (("width", "width"), ("depth", "depth"), ("accuracy", "accuracy"),
                                 ("planned_units", "units"))}),
        "best_vs_smallest": {"mean": diff.mean, "low": diff.low, "high": diff.high, "n": diff.n},
        "by_width": by_width, "by_depth": by_depth,
        "non_monotonic": any(c["non_monotonic"] for c in curves),
        "non_monotonic_significant": any(c["drop_after_peak"] and c["drop_after_peak"]["significant"] for c in curves),
        "best_depth_by_width": best_depths,
        "best_depth_moves_with_width": moves,
    }


def statements(analysis: dict[str, Any]) -> list[str]:
    """The two insights in words, as the table and the report print them."""
    lines = []
    curves = [*analysis["by_width"], *analysis["by_depth"]]
    bent = [c for c in curves if c["non_monotonic"]]
    if not curves:
        lines.append("Insight 2: one width and one depth only — no curve to judge")
    elif bent:
        names = ", ".join(f"width {c['width']}" if "width" in c else f"depth {c['depth']}" for c in bent)
        sig = analysis["non_monotonic_significant"]
        lines.append(f"Insight 2: scaling is non-monotonic along {names} (past its peak, more compute scores lower"
                     + ("; significant on at least one, paired 95% CI)" if sig else "; no drop is significant at paired 95%)"))
    else:
        lines.append("Insight 2: not seen — every curve peaks at its largest setting (or is flat)")
    moves = analysis["best_depth_by_width"]
    if moves:
        spots = ", ".join(f"w={w}: d={d}" for w, d in moves.items())
        lines.append(f"Insight 3: best depth {'moves' if analysis['best_depth_moves_with_width'] else 'does not move'}"
                     f" with width ({spots})")
    return lines


__all__ = ["KIND", "Cell", "PilotResult", "PilotSettings", "analyse", "grid", "parse_axis", "run_pilot", "statements"]
