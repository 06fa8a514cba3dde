"""The one selection: candidates, pooled accuracy with errors, ranking, rules, best so far."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from ttsgraph import selection
from ttsgraph.errors import TtsGraphError
from ttsgraph.graph import Graph, chain, parallel, single

SMOL, GEMMA = "smollm2-135m", "gemma-3-270m"


@dataclass
class T:
    """A stored trial, as selection reads it."""

    id: int
    graph: Graph
    correct: int
    scored: int
    errors: int = 0
    planned_units: float = 1.0
    latency_mean: float | None = 1.0
    candidate: bool = True
    kind: str = "search"
    iteration: int = 0

    @property
    def graph_hash(self) -> str:
        return self.graph.canonical_hash()


A, B, C = single(SMOL), parallel(2, SMOL, GEMMA), chain(2, SMOL, GEMMA)


def test_pooled_accuracy_counts_errors_as_not_correct() -> None:
    (g,) = selection.pool([T(1, A, correct=2, scored=3, errors=1), T(2, A, correct=1, scored=2, errors=2)])
    assert (g.correct, g.items, g.errors) == (3, 8, 3) and g.accuracy == 3 / 8
    assert g.trial == 1 and [t.id for t in g.trials] == [1, 2]
    assert g.latency == 1.0
    (dead,) = selection.pool([T(1, A, correct=0, scored=0, errors=3, latency_mean=0.0)])
    assert dead.latency is None and dead.accuracy == 0.0  # no scored item: no latency, never on a front


def test_a_probe_does_not_make_its_graph_a_candidate_but_counts_once_it_is_one() -> None:
    trials = [T(1, A, 1, 1, candidate=False), T(2, B, 0, 3), T(3, C, 1, 1, candidate=False), T(4, C, 1, 3)]
    cands = {g.graph_hash: g for g in selection.candidates(trials)}
    assert set(cands) == {B.canonical_hash(), C.canonical_hash()}
    assert cands[C.canonical_hash()].items == 4  # the probe's item pooled with the batch
    assert selection.choose(trials).graph_hash == C.canonical_hash()


def test_ranking_ties_go_to_fewer_units_then_the_earlier_graph() -> None:
    trials = [T(1, A, 2, 2, planned_units=3.0), T(2, B, 2, 2, planned_units=2.0), T(3, C, 2, 2, planned_units=2.0)]
    assert [g.trial for g in selection.rank(selection.candidates(trials))] == [2, 3, 1]
    by_latency = selection.rank(selection.candidates(trials), lambda g: -(g.latency or 0) - g.trial)
    assert by_latency[0].trial == 1  # a custom utility decides first


def test_rules_best_last_pareto_and_a_probes_only_budget() -> None:
    trials = [T(1, A, 1, 2, planned_units=1.0, latency_mean=0.5), T(2, B, 2, 2, planned_units=4.0),
              T(3, C, 1, 2, planned_units=2.0, latency_mean=2.0), T(4, B, 1, 1, kind="race")]
    best = selection.choose(trials, "best")
    assert best.graph_hash == B.canonical_hash() and (best.correct, best.items) == (3, 3)  # racing pooled in
    last = selection.choose(trials, "last")
    assert last.trial == 3 and last.items == 2  # the last search trial, as it scored
    pareto = selection.choose(trials, "pareto")
    assert pareto.pareto == [1, 2] and pareto.trial == 2  # C is dominated by A (same accuracy, dearer, slower)
    probes = [T(1, A, 1, 1, candidate=False)]
    assert selection.choose(probes).trial == 1  # nothing else was scored: still an answer
    with pytest.raises(TtsGraphError, match="unknown selection"):
        selection.choose(trials, "first")
    with pytest.raises(TtsGraphError, match="no trial"):
        selection.choose([])


def test_selection_round_trips_through_a_config() -> None:
    sel = selection.choose([T(1, A, 1, 2, errors=1)])
    assert selection.load({"selection": sel.to_dict()}) == sel
    assert selection.load({}) is None
    with pytest.raises(TtsGraphError, match="incomplete"):
        selection.load({"selection": {"trial": 1}})


def test_best_so_far_follows_the_selection_and_skips_probes() -> None:
    trials = [T(1, A, 1, 1, candidate=False), T(2, B, 1, 3), T(3, C, 2, 3), T(4, C, 0, 3, kind="race")]
    curve = selection.best_so_far(trials)
    assert [(p.trial, p.evaluations, p.accuracy, p.trial_accuracy) for p in curve] == [
        (2, 4, 1 / 3, 1 / 3), (3, 7, 2 / 3, 2 / 3), (4, 10, 1 / 3, 0.0)]  # racing pulled C down to 2/6
