"""The study's paired phases: classical strategies first, successive-halving confirmation last.

`Study` calls these when its settings ask for them (`classical`, `confirm` > 0). Both phases
store what they score as ordinary trials (kinds "classical" and "confirm", meta `origin` and
`name` for a classical strategy), so the optimizer's feedback, the selection, the report and a
resumed run all see them; both are resumable by coverage: a graph already scored on an item of
the panel is never scored on it again, so a resumed study redoes nothing and ends where the
uninterrupted one would have (the same trials in the same order, the same decision).

The panel is the study's item stream from position 0: with confirmation on, every proposal is
scored on the panel's first items too, so all candidates are compared on the same items.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ttsgraph import confirm as C
from ttsgraph import selection
from ttsgraph.executor import ItemResult
from ttsgraph.search.base import Evaluation
from ttsgraph.search.classical import ORIGIN, classical_graphs, name_of
from ttsgraph.stats import paired_difference_ci

if TYPE_CHECKING:
    from ttsgraph.study import Study


def _kind_position(study: Study, kind: str) -> int:
    return len(study.store.trials(kind))


async def _score_missing(study: Study, graph: Any, items: Sequence[Any], meta: dict[str, Any], kind: str,
                         have: set[str], label: str, iteration: int = 0) -> tuple[Evaluation | None, list[ItemResult]]:
    """Score `graph` on the items of `items` it was not scored on yet; store them as one trial."""
    from ttsgraph.study import _calls

    todo = [it for it in items if it.id not in have]
    if not todo:
        return None, []
    results, seconds = await study._score(graph, todo, label)
    calls, hits = _calls(results)
    ev = study._evaluation(0, graph, results, {**meta, "study": {"backend_calls": calls, "cache_hits": hits}})
    ev.trial = study.store.add_trial(ev, iteration=iteration, optimizer=study.optimizer.name, seed=study.settings.seed,
                                     results=results, position=_kind_position(study, kind), kind=kind,
                                     eval_seconds=seconds)
    study._eval_seconds += seconds
    return ev, results


def _covered(study: Study) -> dict[str, set[str]]:
    """graph hash → the item ids some stored trial scored it on."""
    out: dict[str, set[str]] = {}
    for t in study.store.trials():
        out.setdefault(t.graph_hash, set()).update(t.item_ids)
    return out


async def run_classical(study: Study) -> list[Evaluation]:
    """Score every classical strategy that fits the budget on the panel's first `batch` items
    (the items the search's candidates get), stored as kind "classical"; returns one evaluation
    per strategy (rebuilt from the store on resume) for the optimizer's feedback."""
    items = study.stream.take(0, study.settings.batch)
    covered = _covered(study)
    out: list[Evaluation] = []
    strategies = classical_graphs(study.space)
    for k, c in enumerate(strategies):
        h = c.graph.canonical_hash()
        meta = {"origin": ORIGIN, "name": c.name, "classical_kind": c.kind}
        ev, _ = await _score_missing(study, c.graph, items, meta, "classical", covered.get(h, set()),
                                     f"classical {k + 1}/{len(strategies)}")
        if ev is None:  # scored before (a resumed run): the stored trial speaks for it
            record = next(t for t in study.store.trials("classical") if t.graph_hash == h)
            ev = study._from_record(record)
        out.append(ev)
        study._emit(kind="classical", name=c.name, accuracy=ev.accuracy, planned_units=c.units)
    return out


def _contenders(study: Study) -> list[C.Contender]:
    """Every candidate graph, ranked by its pooled score before the confirmation (so a resumed
    confirmation picks the same finalists), with its per-item outcomes from every trial."""
    trials = study.store.trials()
    names: dict[str, str] = {}
    for t in trials:
        n = name_of(t.meta)
        if n is not None:
            names.setdefault(t.graph_hash, n)
    every = {g.graph_hash: g for g in selection.candidates(trials)}
    out = []
    for g in selection.candidates([t for t in trials if t.kind != "confirm"]):
        c = C.Contender(g.graph_hash, g.graph, g.planned_units, g.trial, names.get(g.graph_hash),
                        pooled=study._score_of(g))
        for t in every[g.graph_hash].trials:
            for r in study.store.item_results(t.id):
                if r["item_id"] not in c.outcomes:
                    c.outcomes[r["item_id"]] = bool(r["correct"])
                    if r["error"] is not None:
                        c.errors.add(r["item_id"])
        out.append(c)
    out.sort(key=lambda c: (-c.pooled, c.units, c.trial))
    return out


async def run_confirmation(study: Study) -> selection.Selection:
    """Successive halving on the panel (see `ttsgraph.confirm`), then the cheapest-not-worse rule.
    The confirmation size is `confirm_items`, at most the search split (said in the decision)."""
    s = study.settings
    panel_size = min(int(s.confirm_items), len(study.stream.items))
    ranked = _contenders(study)
    if not ranked:  # a budget spent on screening probes only, nothing classical: the plain rule decides
        return selection.choose(study.store.trials(), "best", study._score_of)
    finalists = C.finalists_of(ranked, s.confirm)
    schedule = C.levels(s.batch, panel_size)
    history: list[dict[str, Any]] = []
    items: list[Any] = []
    ids: list[str] = []
    for level, n in enumerate(schedule):
        items = study.stream.take(0, n)
        ids = [it.id for it in items]
        for k, c in enumerate(finalists):
            meta: dict[str, Any] = {"confirm_level": level, "confirm_of": c.trial}
            if c.name is not None:
                meta.update(origin=ORIGIN, name=c.name)
            _, results = await _score_missing(study, c.graph, items, meta, "confirm", set(c.outcomes),
                                              f"confirming {k + 1}/{len(finalists)} on {n} items", iteration=level)
            for r in results:
                c.outcomes[r.item_id] = bool(r.correct)
                if r.error is not None:
                    c.errors.add(r.item_id)
        incumbent = _incumbent(finalists, ids)
        history.append({"items": n, "finalists": [c.trial for c in finalists]})
        if level < len(schedule) - 1:
            finalists = C.halve(finalists, incumbent, ids)
    chosen, best = C.cheapest_not_worse(finalists, ids, s.confirm_tolerance)
    incumbent = _incumbent(finalists, ids)
    table = [{"trial": c.trial, "graph_hash": c.graph_hash, "name": c.label(), "classical": c.classical,
              "planned_units": c.units, "accuracy": c.accuracy(ids), "items": len(ids),
              "vs_best": C.diff_dict(C.paired(c, best, ids))} for c in finalists]
    record = {"items": len(ids), "requested_items": int(s.confirm_items), "search_split": len(study.stream.items),
              "levels": history, "finalists": table, "best_trial": best.trial, "selected_trial": chosen.trial,
              "rule": C.RULE, "tolerance": s.confirm_tolerance}
    latency = next((g.latency for g in selection.candidates(study.store.trials()) if g.graph_hash == chosen.graph_hash),
                   None)
    vs: dict[str, Any] = {}
    if incumbent is not None:
        vs = {"name": incumbent.name, "trial": incumbent.trial, "graph_hash": incumbent.graph_hash,
              "planned_units": incumbent.units, "search": C.diff_dict(C.paired(chosen, incumbent, ids)),
              "search_accuracy": incumbent.accuracy(ids)}
    return selection.Selection(trial=chosen.trial, graph_hash=chosen.graph_hash, accuracy=chosen.accuracy(ids),
                               correct=chosen.correct(ids), items=len(ids),
                               errors=sum(1 for i in ids if i in chosen.errors), rule=C.RULE,
                               planned_units=chosen.units, latency=latency, confirm=record, vs_classical=vs)


def _incumbent(cs: Sequence[C.Contender], ids: Sequence[str]) -> C.Contender | None:
    classical = [c for c in cs if c.classical]
    return C.most_accurate(classical, ids) if classical else None


async def test_vs_classical(study: Study, chosen: selection.Selection, selected_results: list[ItemResult]) -> None:
    """Score the best classical strategy on the same test items as the selected graph and record the
    paired difference (selected − classical) in `chosen.vs_classical["test"]`."""
    vs = chosen.vs_classical
    if not vs or not selected_results:
        return
    graph = study.store.trial(int(vs["trial"])).graph
    items = {it.id: it for it in study._test_items()}
    test_items = [items[r.item_id] for r in selected_results]
    if vs["graph_hash"] == chosen.graph_hash:
        theirs = selected_results
    else:
        theirs, _ = await study._score(graph, test_items, "test (best classical)")
        from ttsgraph.executor import summarize

        summary = summarize(theirs, graph, study.pool, study.task)
        study.store.set_test_result(graph.canonical_hash(), "test", {**summary.to_dict(),
                                                                     "limit": study.settings.test_limit})
    by_id = {r.item_id: r for r in theirs}
    ours = [float(r.correct) for r in selected_results]
    base = [float(by_id[r.item_id].correct) for r in selected_results]
    vs["test"] = C.diff_dict(paired_difference_ci(ours, base)) if ours else None
    vs["test_accuracy"] = sum(base) / len(base) if base else None


__all__ = ["run_classical", "run_confirmation", "test_vs_classical"]
