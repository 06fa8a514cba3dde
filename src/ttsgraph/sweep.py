"""The compute-optimal frontier: one study per budget, beside what needs no search.

`ttsgraph sweep --budgets 1,2,3,4` runs the same study (task, pool, optimizer, evaluation budget,
seed) at each node budget b into `OUT/b<b>/`, each a normal run directory (`ttsgraph report` reads
it). The studies share the response cache and, through the seed, their search items. Then every
selected graph and every classical baseline — each pool model alone, and self-consistency (k
samples + a vote) for each k that fits the largest budget — is scored on the *same* test items, so
the frontier is compared item by item: for each budget, the best accuracy any of these graphs
reaches within it. More compute "stops paying" at the smallest budget whose best is not
significantly worse (paired 95 % CI) than the best at the largest budget.

Resume: a budget whose study finished left `OUT/b<b>/sweep_row.json` and is skipped; an unfinished
one is continued from its store (the study resumes itself); test scores of baselines live in the
sweep's own store (`OUT/run.sqlite`), so a rerun scores nothing twice.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ttsgraph.config import BudgetSpec, RunConfig
from ttsgraph.cost import planned_units
from ttsgraph.errors import TaskError, TtsGraphError
from ttsgraph.evaluator import evaluate_one
from ttsgraph.graph import Graph, self_consistency, single
from ttsgraph.stats import paired_difference_ci, wilson_interval
from ttsgraph.store import RunStore
from ttsgraph.study import Study

ROW_FILE = "sweep_row.json"
SUMMARY = "sweep.json"
MAX_SC = 16
"""Largest self-consistency k tried (the vote of 16 samples is past any budget here)."""

OnEvent = Callable[[dict[str, Any]], None]


def parse_budgets(text: str) -> tuple[int, ...]:
    """`1,2,4` → (1, 2, 4): node budgets b ≥ 1, distinct, sorted; a bad list is a one-line error."""
    values = []
    for part in text.split(","):
        part = part.strip()
        if not part.isdigit() or int(part) < 1:
            raise TaskError(f"--budgets: {part!r} is not a node budget (an integer >= 1; e.g. --budgets 1,2,3,4)")
        values.append(int(part))
    if not values:
        raise TaskError("--budgets: give at least one budget")
    return tuple(sorted(set(values)))


@dataclass
class Scored:
    """A graph scored on the sweep's test items: per-item 0/1 outcomes in item order."""

    name: str
    kind: str  # "search" | "single" | "self-consistency"
    graph: Graph
    units: float
    outcomes: list[int]
    budget: int | None = None  # the study's b, for search results

    @property
    def accuracy(self) -> float:
        return sum(self.outcomes) / len(self.outcomes) if self.outcomes else 0.0

    def to_dict(self) -> dict[str, Any]:
        lo, hi = wilson_interval(sum(self.outcomes), len(self.outcomes))
        return {"name": self.name, "kind": self.kind, "budget": self.budget, "planned_units": self.units,
                "accuracy": self.accuracy, "ci": [lo, hi], "correct": sum(self.outcomes),
                "items": len(self.outcomes), "graph_hash": self.graph.canonical_hash(), "graph": self.graph.to_dict()}


def baselines(pool: Any, lengths: Any, max_units: float) -> list[tuple[str, str, Graph, float]]:
    """(name, kind, graph, units) of each pool model alone and of self-consistency with every k ≥ 2
    that fits `max_units`."""
    out = []
    for m in pool.models:
        g = single(m)
        out.append((f"single {m}", "single", g, planned_units(g, pool, lengths)))
        for k in range(2, MAX_SC + 1):
            g = self_consistency(k, m)
            u = planned_units(g, pool, lengths)
            if u > max_units + 1e-9:
                break
            out.append((f"sc{k} {m}", "self-consistency", g, u))
    return out


def _check_base(store: RunStore, cfg: RunConfig) -> None:
    """A rerun must be the same sweep: everything but the budgets and the backend settings agrees."""
    base = {k: v for k, v in cfg.to_json().items() if k not in ("budget", "backend", "lengths")}
    stored = store.get_config("sweep_base")
    if stored is None:
        store.set_config("sweep_base", base)
        return
    for key in sorted(set(base) | set(stored)):
        if base.get(key) != stored.get(key):
            raise TtsGraphError(f"{store.path}: this sweep was created with {key} = {stored.get(key)!r}, not "
                                f"{base.get(key)!r}; rerun with the same settings or choose another --out")


async def _study(rt: Any, cfg: RunConfig, b: int, run_dir: Path, emit: OnEvent) -> dict[str, Any]:
    """Run (or resume, or skip) the study at budget b; returns its row (also written to ROW_FILE)."""
    row_path = run_dir / ROW_FILE
    if row_path.exists():
        emit({"kind": "skip", "budget": b})
        return json.loads(row_path.read_text(encoding="utf-8"))
    cfg_b = cfg.model_copy(update={"budget": BudgetSpec(nodes=b)})
    resuming = (run_dir / RunStore.FILE).exists()
    store = RunStore.open(run_dir) if resuming else RunStore.create(run_dir)
    try:
        rt_b = dataclasses.replace(rt, config=cfg_b)
        study = Study.from_runtime(rt_b, store)
        rt_b.record_settings(store, study.space, created=not resuming)
        emit({"kind": "study", "budget": b, "units": study.space.budget.units, "resumed": resuming})
        result = await study.run(progress=lambda e: emit({**e, "budget": b}))
        row = {"budget": b, "budget_units": study.space.budget.units, **result.to_dict(), "resumed": resuming}
    finally:
        store.close()
    row_path.write_text(json.dumps(row, indent=2) + "\n", encoding="utf-8")
    return row


async def _score(rt: Any, store: RunStore, g: Graph, items: Sequence[Any], item_ids: list[str],
                 emit: OnEvent, label: str) -> list[int]:
    """Per-item outcomes of g on the test items: from the sweep store if scored before, else run
    (node calls a study already made come from the response cache)."""
    key = g.canonical_hash()
    stored = store.test_result(key, "sweep-test")
    if stored is not None and stored.get("item_ids") == item_ids:
        return list(stored["outcomes"])
    emit({"kind": "score", "label": label, "items": len(items)})
    results = await evaluate_one(rt.evaluator, g, items, params=rt.params,
                                 on_result=lambda r: emit({"kind": "item", "correct": r.correct}))
    outcomes = [int(bool(r.correct)) for r in results]
    store.set_test_result(key, "sweep-test", {"item_ids": item_ids, "outcomes": outcomes,
                                              "errors": sum(r.error is not None for r in results)})
    return outcomes


def frontier(rows: list[dict[str, Any]], scored: list[Scored]) -> dict[str, Any]:
    """For each budget (in units), the best graph among the search results and baselines that fit it;
    and where more compute stops paying (see the module docstring)."""
    points = []
    for row in sorted(rows, key=lambda r: r["budget_units"]):
        fit = [s for s in scored if s.units <= row["budget_units"] + 1e-9]
        best = max(fit, key=lambda s: (s.accuracy, -s.units, s.kind != "search"))  # a tie: name the classic
        base = [s for s in fit if s.kind != "search"]
        best_base = max(base, key=lambda s: (s.accuracy, -s.units)) if base else None
        search = next((s for s in scored if s.kind == "search" and s.budget == row["budget"]), None)
        vs = (paired_difference_ci(search.outcomes, best_base.outcomes)
              if search is not None and best_base is not None else None)
        points.append({"budget": row["budget"], "budget_units": row["budget_units"], "best": best,
                       "best_baseline": best_base, "search": search, "search_vs_best_baseline": vs})
    if not points:
        return {"points": [], "stops_paying": None}
    top = points[-1]["best"]
    stop = points[-1]
    for p in points:
        d = paired_difference_ci(p["best"].outcomes, top.outcomes)
        if d.high >= 0:  # not significantly worse than the best at the largest budget
            stop = p
            break
    return {"points": points, "stops_paying": stop["budget"], "stops_paying_units": stop["budget_units"]}


def _point_dict(p: dict[str, Any]) -> dict[str, Any]:
    vs = p["search_vs_best_baseline"]
    return {"budget": p["budget"], "budget_units": p["budget_units"], "best": p["best"].name,
            "best_accuracy": p["best"].accuracy, "best_units": p["best"].units,
            "best_ci": list(wilson_interval(sum(p["best"].outcomes), len(p["best"].outcomes))),
            "best_baseline": p["best_baseline"].name if p["best_baseline"] else None,
            "best_baseline_accuracy": p["best_baseline"].accuracy if p["best_baseline"] else None,
            "search_accuracy": p["search"].accuracy if p["search"] else None,
            "search_vs_best_baseline": None if vs is None else {"mean": vs.mean, "low": vs.low, "high": vs.high,
                                                                "n": vs.n}}


async def run_sweep(rt: Any, store: RunStore, budgets: Sequence[int], out_dir: Path,
                    on_event: OnEvent | None = None) -> dict[str, Any]:
    """Every budget's study, then every selected graph and baseline on the same test items; returns
    the sweep summary (also what `sweep.json` holds)."""
    emit = on_event or (lambda _e: None)
    cfg: RunConfig = rt.config
    _check_base(store, cfg)
    done_budgets = sorted(set(store.get_config("budgets") or []) | set(budgets))
    store.set_config("budgets", done_budgets)
    rows = []
    for b in budgets:
        rows.append(await _study(rt, cfg, b, out_dir / f"b{b}", emit))
    items = rt.task.items("test")
    if cfg.test_limit is not None:
        items = items[: cfg.test_limit]
    if not items:
        raise TaskError(f"task {cfg.task!r} has no test items for the sweep's comparison (--test-limit 0?)")
    item_ids = [str(i.id) for i in items]
    max_units = max(r["budget_units"] for r in rows)
    scored: list[Scored] = []
    for row in rows:
        g = Graph.from_dict(row["best_graph"])
        outcomes = await _score(rt, store, g, items, item_ids, emit, f"b{row['budget']} selected")
        scored.append(Scored(f"search b{row['budget']}", "search", g, row["planned_units"], outcomes, row["budget"]))
    for name, kind, g, units in baselines(rt.pool, rt.task.lengths, max_units):
        scored.append(Scored(name, kind, g, units, await _score(rt, store, g, items, item_ids, emit, name)))
    front = frontier(rows, scored)
    return {
        "task": cfg.task, "optimizer": cfg.optimizer.name, "budgets": list(budgets), "test_items": len(items),
        "item_ids": item_ids,
        "rows": [{k: r[k] for k in ("budget", "budget_units", "planned_units", "search_accuracy", "search_items",
                                    "test_accuracy", "test_ci", "test_items", "evaluations", "backend_calls",
                                    "cache_hits", "eval_seconds", "agent_seconds", "run_dir")} for r in rows],
        "scored": [s.to_dict() for s in scored],
        "frontier": [_point_dict(p) for p in front["points"]],
        "stops_paying": front["stops_paying"], "stops_paying_units": front.get("stops_paying_units"),
    }


def statement(summary: dict[str, Any]) -> str:
    """Where more compute stops paying, in words."""
    b = summary.get("stops_paying")
    if b is None:
        return "no budget scored"
    last = summary["budgets"][-1]
    if b == last:
        return f"more compute still paid up to the largest budget (b = {last})"
    return (f"more compute stops paying at b = {b} ({summary['stops_paying_units']:.2f} units): no larger budget's "
            f"best graph is significantly better (paired 95% CI on {summary['test_items']} test items)")


__all__ = ["ROW_FILE", "SUMMARY", "Scored", "baselines", "frontier", "parse_budgets", "run_sweep", "statement"]
