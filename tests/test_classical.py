"""Classical strategies as candidates and the paired, sequential selection (issue 11 parts 3-4):
what fits a budget, that they are scored first on the candidates' items, the cheapest-not-worse
rule, the paired difference in `--json`, `--no-classical`, and resume."""

from __future__ import annotations

import json

import pytest

from tests.test_search_cli import BASE, cli  # noqa: F401 (fixture)
from tests.test_study import GEMMA, SMOL, Crash, crashing_backend, make_study, run, task  # noqa: F401
from ttsgraph import confirm as C
from ttsgraph.cost import Budget, TaskLengths
from ttsgraph.graph import Graph, Node, chain, parallel, single
from ttsgraph.models import load_pool
from ttsgraph.search import agent_prompts as P
from ttsgraph.search.base import Evaluation
from ttsgraph.search.classical import classical_graphs
from ttsgraph.search.space import SearchSpace
from ttsgraph.store import RunStore

LENGTHS = TaskLengths(60, 20)


def _space(b: int, costs: dict[str, int] | None = None) -> SearchSpace:
    p = load_pool("local")
    return SearchSpace(p, LENGTHS, Budget.from_nodes(b, p, LENGTHS), unit_costs=costs)


def test_classical_strategies_are_what_fits_the_budget_costed_like_the_search() -> None:
    for b in (1, 2, 3, 5):
        space = _space(b)
        found = classical_graphs(space)
        assert found and len({c.graph.canonical_hash() for c in found}) == len(found)
        for c in found:
            assert space.fits(c.graph) and c.units == pytest.approx(space.units(c.graph))
            workers = [n for n in c.graph.nodes if n.id != c.graph.output]
            assert sum(space.unit_costs()[n.model] for n in workers) <= space.node_budget  # the mixes' rule
        names = {c.name for c in found}
        assert {f"{SMOL} alone", f"{GEMMA} alone"} <= names
        sc = sorted(int(c.name.split()[1].split("×")[0]) for c in found if c.kind == "self-consistency"
                    and c.name.endswith(SMOL))
        assert sc == list(range(3, b + 1))  # every k >= 3 whose k unit-cost-1 workers fit b (k = 2 is the model alone)
    # a model whose unit cost is 2 gets no self-consistency at b = 5 (3 samples cost 6)
    costly = classical_graphs(_space(5, {SMOL: 1, GEMMA: 2}))
    assert not [c for c in costly if c.kind == "self-consistency" and GEMMA in c.name]
    assert [c for c in costly if c.kind == "self-consistency" and SMOL in c.name]
    # the fuser graph is the widest that also fits the FLOPs ceiling, not only the unit costs
    fused = [c for c in classical_graphs(_space(4)) if c.kind == "parallel-fuse"]
    assert fused and all(_space(4).fits(c.graph) for c in fused)


def _c(name: str, units: float, outcomes: list[int], trial: int, classical: bool = False) -> C.Contender:
    return C.Contender(name, single(SMOL), units, trial, name if classical else None,
                       {f"i{k}": bool(v) for k, v in enumerate(outcomes)})


def test_self_consistency_of_two_would_answer_as_the_model_alone() -> None:
    """Why k = 2 is not a classical candidate: a tie goes to the first sample, so the vote of two
    is always sample 0's answer, the very call of the model alone."""
    from ttsgraph.vote import majority

    for a, b in (("3", "3"), ("3", "4"), ("4", "3"), (None, "5")):
        winner, _ = majority([a, b])
        assert winner == (a if a is not None else b)


def test_cheapest_not_worse_prefers_a_cheaper_graph_within_the_interval_and_the_tolerance() -> None:
    ids = [f"i{k}" for k in range(20)]
    best = _c("big", 4.0, [1] * 14 + [0] * 6, 1)
    close = _c("small", 1.0, [1] * 13 + [0] * 7, 2)  # one item worse: inside the paired CI, 5 points below
    chosen, top = C.cheapest_not_worse([best, close], ids)
    assert top is best and chosen is best  # 5 points is beyond the 2-point tolerance
    chosen, top = C.cheapest_not_worse([best, close], ids, tolerance=0.05)
    assert top is best and chosen is close
    tied = _c("tied", 1.0, [1] * 14 + [0] * 6, 4)  # as accurate, a quarter of the cost
    assert C.cheapest_not_worse([best, tied], ids)[0] is tied
    bad = _c("cheap-bad", 0.5, [1] * 2 + [0] * 18, 3)  # far worse on the same items: excluded
    chosen, top = C.cheapest_not_worse([best, close, bad], ids, tolerance=1.0)
    assert chosen is close and C.significantly_worse(bad, best, ids)
    alone = C.cheapest_not_worse([best, bad], ids, tolerance=1.0)[0]
    assert alone is best


def test_halving_keeps_the_incumbent_and_drops_the_significantly_worse() -> None:
    ids = [f"i{k}" for k in range(12)]
    inc = _c("sc", 3.0, [1] * 9 + [0] * 3, 1, classical=True)
    worse = _c("w", 1.0, [0] * 12, 2)
    good = [_c(f"g{k}", 2.0, [1] * (8 + k % 2) + [0] * (4 - k % 2), 3 + k) for k in range(4)]
    kept = C.halve([worse, *good, inc], inc, ids)
    assert inc in kept and worse not in kept and len(kept) <= 4
    assert C.levels(3, 20) == [3, 6, 12, 20] and C.levels(5, 5) == [5] and C.levels(30, 20) == [20]


def test_classical_trials_come_first_on_the_candidates_items_and_are_selectable(tmp_path, pool, task):  # noqa: F811
    graphs = [parallel(2, SMOL, SMOL), chain(2, SMOL)]
    study = make_study(tmp_path, pool, task, graphs, iterations=3, batch=3, budget_nodes=3, classical=True,
                       confirm=2, confirm_items=9, test_limit=4)
    result = run(study)
    trials = study.store.trials()
    kinds = [t.kind for t in trials]
    first_search = kinds.index("search")
    assert set(kinds[:first_search]) == {"classical"} and "classical" not in kinds[first_search:]
    classical = [t for t in trials if t.kind == "classical"]
    assert len(classical) == len(classical_graphs(study.space))
    search = [t for t in trials if t.kind == "search"]
    assert all(t.item_ids == search[0].item_ids for t in classical + search)  # common items
    assert all(t.meta["origin"] == "classical" and t.meta["name"] for t in classical)
    # the optimizer saw their scores (feedback), without being told them as its own samples
    assert [e.meta["name"] for e in study.optimizer.reference] == [t.meta["name"] for t in classical]
    assert len(study.optimizer.history) == len(search)
    decision = study.store.get_config("selection")
    assert decision["rule"] == "cheapest-not-worse" and decision["confirm"]["items"] == 9
    finalists = decision["confirm"]["finalists"]
    assert decision["confirm"]["selected_trial"] in [f["trial"] for f in finalists]
    vs = decision["vs_classical"]
    assert vs["search"]["n"] == 9 and vs["test"]["n"] == 4 and vs["search"]["low"] <= vs["search"]["mean"]
    assert result.to_dict()["vs_classical"] == vs
    # gemma is always right in this script, smollm on half the items: gemma alone (the cheapest
    # graph, and as accurate as anything) is the selection
    assert result.best.graph.canonical_hash() == single(GEMMA).canonical_hash()


def test_a_crashed_study_with_classical_and_confirmation_resumes_to_the_same_decision(tmp_path, pool, task):  # noqa: F811
    graphs = [parallel(2, SMOL, SMOL), Graph([Node("a", GEMMA), Node("out", SMOL)], [("a", "out")], "out")]
    kw = dict(iterations=3, batch=2, budget_nodes=2, classical=True, confirm=2, confirm_items=6, test_limit=3, seed=3)
    ref = make_study(tmp_path / "ref", pool, task, graphs, **kw)
    run(ref)
    reference = [(t.kind, t.graph_hash, t.item_ids) for t in ref.store.trials()]
    decision = {k: v for k, v in ref.store.get_config("selection").items() if k != "latency"}  # wall time
    ref.store.close()
    for after in (4, 56):  # inside the classical phase; inside the confirmation
        crashing = make_study(tmp_path / f"c{after}", pool, task, graphs, backend=crashing_backend(pool, after), **kw)
        with pytest.raises(Crash):
            run(crashing)
        kinds = {t.kind for t in crashing.store.trials()}
        assert kinds == ({"classical"} if after == 4 else {"classical", "search", "confirm"}), kinds
        crashing.store.close()
        resumed = make_study(tmp_path / f"c{after}", pool, task, graphs, create=False, **kw)
        run(resumed)
        assert [(t.kind, t.graph_hash, t.item_ids) for t in resumed.store.trials()] == reference
        assert {k: v for k, v in resumed.store.get_config("selection").items() if k != "latency"} == decision
        resumed.store.close()


def test_search_json_reports_the_paired_difference_and_no_classical_turns_it_off(tmp_path, cli):  # noqa: F811
    data = json.loads(cli(*BASE, "--out", "on", "--no-cache", "--confirm-items", "8", "--json").stdout)
    vs = data["vs_classical"]
    assert vs["name"] and vs["test"]["n"] == 4 and vs["search"]["n"] == 8
    assert vs["search"]["low"] <= vs["search"]["mean"] <= vs["search"]["high"]
    assert data["confirmation"]["items"] == 8 and data["selection_rule"] == "cheapest-not-worse"
    human = cli("search", "--out", "on", "--resume").stdout  # a finished run re-reports its decision
    assert "vs best classical" in human and vs["name"] in human
    assert human.strip().splitlines()[-1].startswith(f"selected graph vs best classical ({vs['name']}) on 4 test")
    report = json.loads(cli("report", "on", "--json").stdout)  # the report reads the stored decision
    assert "vs best classical" in (tmp_path / report["html"]).read_text()
    off = json.loads(cli(*BASE, "--out", "off", "--no-cache", "--no-classical", "--json").stdout)
    assert off["vs_classical"] is None
    with RunStore.open(tmp_path / "off", readonly=True) as store:
        assert not store.trials("classical") and store.get_config("run")["classical"] is False


def test_the_agent_prompt_shows_the_classical_scores() -> None:
    refs = [Evaluation(0, single(SMOL), 0.5, 0.5, 1, 2, 0, ["a", "b"], 1.0, 1.0, 0.0, {"name": f"{SMOL} alone"}),
            Evaluation(0, single(GEMMA), 1.0, 1.0, 2, 2, 0, ["a", "b"], 0.9, 0.9, 0.0, {"name": f"{GEMMA} alone"})]
    text = P.incumbents_text(refs)
    assert text is not None and text.index(GEMMA) < text.index(SMOL) and "100%" in text
    assert P.incumbents_text([]) is None


def test_confirmation_without_any_candidate_falls_back_to_the_plain_rule(tmp_path, pool, task):  # noqa: F811
    from ttsgraph.search.base import Proposal
    from tests.test_study import ScriptOpt

    class ProbesOnly(ScriptOpt):
        async def ask(self) -> list[Proposal]:
            return [Proposal(self.graphs[0], 1, {}, candidate=False)]

    study = make_study(tmp_path, pool, task, [single(SMOL)], iterations=2, batch=1, opt_cls=ProbesOnly,
                       confirm=2, confirm_items=4, test_limit=0)
    result = run(study)
    assert result.decision["rule"] == "best" and result.to_dict()["vs_classical"] is None


def test_every_classical_strategy_enters_the_race_not_only_the_early_leaders() -> None:
    # on the first 3 items a weak model alone can lead; the stronger one must still race
    lucky = _c("gemma alone", 1.0, [1, 1, 0], 1, classical=True)
    lucky_sc = _c("sc 2 gemma", 2.0, [1, 1, 0], 2, classical=True)
    strong = _c("smollm2 alone", 0.5, [1, 0, 0], 3, classical=True)
    proposal = _c("proposal", 2.0, [1, 1, 1], 4)
    finalists = C.finalists_of([proposal, lucky, lucky_sc, strong], 1)
    assert finalists[0] is proposal and all(c in finalists for c in (lucky, lucky_sc, strong))
    assert C.finalists_of([proposal, lucky, strong], 0) == [lucky, strong]  # a proposal only by rank
