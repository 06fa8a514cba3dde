"""Search space: budgets → node budgets and mixes, repair, random graphs, the probabilistic graph."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ttsgraph.cost import PAPER_LENGTHS, Budget, TaskLengths, reference_bound_units
from ttsgraph.errors import BudgetError, GraphError
from ttsgraph.graph import Graph, Node, fully_connected
from ttsgraph.models import load_pool
from ttsgraph.search.numeric import logit, sigmoid, softmax
from ttsgraph.search.prob_graph import PROB_EPS, ProbGraph
from ttsgraph.search.role_rules import fix_roles
from ttsgraph.search.space import OUTPUT_ID, SearchSpace

MATH = PAPER_LENGTHS["math"]
ARITH = TaskLengths(4.5, 6.0)


@pytest.fixture(scope="module")
def paper():
    return load_pool("paper")


def test_unit_costs_are_rounded_d0_costs(paper):
    space = SearchSpace(paper, MATH, Budget.from_nodes(12, paper, MATH))
    costs = space.unit_costs()
    assert costs["llama-3.2-1b"] == 1
    assert costs["llama-3.2-3b"] == 3  # 2.99 units
    assert costs["llama-3.1-8b"] == 8  # 7.92 units
    assert all(isinstance(v, int) and v >= 1 for v in costs.values())


def test_units_budget_maps_to_largest_fitting_node_budget(paper):
    for b in (4, 8, 12):
        bound = reference_bound_units(b, paper, MATH)
        assert SearchSpace(paper, MATH, Budget(bound)).node_budget == b
        assert SearchSpace(paper, MATH, Budget(bound - 0.01)).node_budget == b - 1
    assert SearchSpace(paper, MATH, Budget(18.0)).node_budget == 4


def test_budget_too_small_is_a_budget_error(paper):
    with pytest.raises(BudgetError, match="smallest reference graph"):
        SearchSpace(paper, MATH, Budget(2.0))


def test_budget_filling_combos_fill_the_node_budget_with_minimal_leftover(paper):
    space = SearchSpace(paper, MATH, Budget.from_nodes(12, paper, MATH))
    costs = space.unit_costs()
    combos = space.combos(budget_filling=True)
    assert {"llama-3.2-1b": 12, "llama-3.2-3b": 0, "llama-3.1-8b": 0, "llama-3.1-70b": 0} in combos
    assert {"llama-3.2-1b": 0, "llama-3.2-3b": 4, "llama-3.1-8b": 0, "llama-3.1-70b": 0} in combos
    for c in combos:
        assert sum(costs[m] * n for m, n in c.items()) == 12
    assert len({tuple(sorted(c.items())) for c in combos}) == len(combos)
    # a budget no mix can fill exactly keeps the smallest leftover: only 3B nodes (cost 3) and b=4
    pool3 = load_pool("paper")
    pool3.models = ["llama-3.2-3b"]
    space3 = SearchSpace(pool3, MATH, Budget.from_nodes(4, pool3, MATH))
    assert space3.combos(budget_filling=True) == [{"llama-3.2-3b": 1}]


def test_the_budget_is_a_ceiling_so_under_filled_combos_are_listed_too(paper):
    space = SearchSpace(paper, MATH, Budget.from_nodes(4, paper, MATH))
    costs = space.unit_costs()
    combos = space.combos()
    spent = [sum(costs[m] * n for m, n in c.items()) for c in combos]
    filling = space.combos(budget_filling=True)
    assert all(c in combos for c in filling) and len(combos) > len(filling)
    one = {"llama-3.2-1b": 1, "llama-3.2-3b": 0, "llama-3.1-8b": 0, "llama-3.1-70b": 0}
    assert one in combos and one not in filling  # a single 1B node: 1 of 4 units
    assert spent == sorted(spent, reverse=True) and max(spent) == 4 and min(spent) == 1
    assert combos[:len(filling)] == filling  # the filling mixes first, in the paper's order
    assert len({tuple(sorted(c.items())) for c in combos}) == len(combos)
    # every under-filled mix builds a graph that fits
    rng = np.random.default_rng(0)
    for c in combos:
        assert space.fits(space.random_graph(c, rng))


def test_combos_respect_max_nodes(paper):
    space = SearchSpace(paper, MATH, Budget.from_nodes(12, paper, MATH), max_nodes=4)
    assert all(sum(c.values()) <= 4 for c in space.combos())
    assert {"llama-3.2-1b": 0, "llama-3.2-3b": 4, "llama-3.1-8b": 0, "llama-3.1-70b": 0} in space.combos()


def test_repair_drops_smallest_model_nodes_until_it_fits(paper):
    space = SearchSpace(paper, MATH, Budget(18.0))
    g = fully_connected(["llama-3.1-8b", "llama-3.2-1b", "llama-3.2-1b", "llama-3.2-3b"], "llama-3.2-3b")
    assert not space.fits(g)
    fixed, removed = space.repair(g)
    assert space.fits(fixed)
    fixed.validate()
    # every removal before the last one was a 1B node while 1B nodes were left
    models = {n.id: n.model for n in g.nodes}
    first_non_1b = next((k for k, r in enumerate(removed) if models[r] != "llama-3.2-1b"), len(removed))
    assert all(models[r] == "llama-3.2-1b" for r in removed[:first_non_1b])
    assert first_non_1b >= 2 or "llama-3.2-1b" in fixed.models_used()
    assert fixed.output == "out" and fixed.node("out").model == "llama-3.2-3b"


def test_repair_keeps_a_fitting_graph_and_drops_dead_nodes(paper):
    space = SearchSpace(paper, MATH, Budget(18.0))
    g = Graph([Node("a", "llama-3.2-1b"), Node("dead", "llama-3.2-1b"), Node("out", "llama-3.2-3b")],
              [("a", "out")], "out")
    fixed, removed = space.repair(g)
    assert removed == ["dead"] and fixed.ids == ["a", "out"]


def test_repair_fixes_orphaned_fuser(paper):
    space = SearchSpace(paper, MATH, Budget(18.0))
    g = Graph([Node("a", "llama-3.2-1b"), Node("f", "llama-3.1-8b", "fuser"), Node("out", "llama-3.2-3b")],
              [("a", "f"), ("f", "out")], "out")
    assert not space.fits(g)  # 1 + 12.54 + 4.75 units
    fixed, removed = space.repair(g)
    assert removed == ["a"]
    assert fixed.node("f").role == "assistant"  # a fuser with nothing to fuse answers itself
    fixed.validate()
    assert space.fits(fixed)


def test_repair_output_alone_over_budget_is_error():
    pool = load_pool("paper")
    space = SearchSpace(pool, MATH, Budget(6.0), output_model=None)  # b = 1 (5.76 units)
    g = Graph([Node("a", "llama-3.2-1b"), Node("out", "llama-3.1-8b")], [("a", "out")], "out")
    with pytest.raises(BudgetError, match="output node alone"):
        space.repair(g)  # 8B alone costs 7.92 units


def test_fix_roles():
    g = Graph([Node("a", "m", "fuser"), Node("b", "m", "fuser"), Node("out", "m", "fuser")],
              [("a", "b"), ("b", "out")], "out")
    fixed = fix_roles(g)
    fixed.validate()
    assert [n.role for n in fixed.nodes] == ["assistant", "fuser", "assistant"]


def test_output_model_fixed_or_searched(paper):
    fixed = SearchSpace(paper, MATH, Budget(42.0))
    assert fixed.output_model == "llama-3.2-3b"
    searched = SearchSpace(paper, MATH, Budget(42.0), output_model=None)
    assert searched.output_model is None
    rng = np.random.default_rng(3)
    pg = ProbGraph(searched, slots=4)
    outs = {pg.sample(rng)[0].node(OUTPUT_ID).model for _ in range(40)}
    assert len(outs) >= 2
    g = Graph([Node("a", "llama-3.2-1b"), Node("out", "llama-3.2-1b")], [("a", "out")], "out")
    with pytest.raises(GraphError, match="must use"):
        fixed.check(g)
    searched.check(g)


def test_initial_edge_probability_is_gptswarm_sparse(paper):
    space = SearchSpace(paper, MATH, Budget(42.0))
    pg = ProbGraph(space, counts={"llama-3.2-1b": 3})
    assert pg.edge_prob("n1", "n2") == pytest.approx(1 / (1 + math.exp(2)), rel=1e-9)  # 0.119
    assert len(pg.potential) == 3 * 2 + 3


def test_edge_table_roundtrip_and_errors(paper):
    space = SearchSpace(paper, MATH, Budget(42.0))
    pg = ProbGraph(space, counts={"llama-3.2-1b": 2, "llama-3.2-3b": 1})
    pg.set_edge_table({("n1", "out"): 0.8, ("n2", "n1"): 0.0})
    table = {(r["src"], r["dst"]): r["prob"] for r in pg.edge_table()}
    assert table[("n1", "out")] == pytest.approx(0.8, abs=1e-6)
    assert table[("n2", "n1")] < 1e-5
    pg.set_edge_table(pg.edge_table())
    assert {(r["src"], r["dst"]): r["prob"] for r in pg.edge_table()} == pytest.approx(table)
    with pytest.raises(GraphError, match="not a potential edge"):
        pg.set_edge_table({("n1", "n9"): 0.5})
    with pytest.raises(GraphError, match="not in"):
        pg.set_edge_table({("n1", "out"): 1.5})


def test_sampling_follows_the_table(paper):
    """An edge table set to certainty reproduces exactly that graph; log p is then ~0."""
    space = SearchSpace(paper, MATH, Budget(42.0))
    pg = ProbGraph(space, counts={"llama-3.2-1b": 2, "llama-3.2-3b": 1}, shift=0.0)
    table = {(r["src"], r["dst"]): 0.0 for r in pg.edge_table()}
    table.update({("n2", "n1"): 1.0, ("n3", "n1"): 1.0, ("n1", "out"): 1.0})
    pg.set_edge_table(table)
    pg.set_params({"role_logits": np.array([[0.0, -50.0]] * 3),  # fuser prob = softmax + 0.5 = 0.5 at the minimum
                   "vote_logit": np.array([-50.0])})  # the output is (almost surely) not a vote
    rng = np.random.default_rng(0)
    g, logp = pg.sample(rng)
    assert sorted(g.edges) == [("n1", "out"), ("n2", "n1"), ("n3", "n1")]
    roles_lp = math.log(0.5)  # n1 (fed by two assistants) drew its role with p = 0.5
    assert logp == pytest.approx(roles_lp, abs=1e-3)


def test_log_prob_matches_sampling_frequencies():
    """Monte-Carlo check: the empirical frequency of a draw ≈ exp(log_prob)."""
    pool = load_pool("paper")
    space = SearchSpace(pool, MATH, Budget(42.0))
    pg = ProbGraph(space, counts={"llama-3.2-1b": 2}, shift=0.0)
    pg.set_edge_table({("n1", "n2"): 0.3, ("n2", "n1"): 0.6, ("n1", "out"): 0.7, ("n2", "out"): 0.4})
    rng = np.random.default_rng(1)
    counts: dict[str, int] = {}
    reps: dict[str, Graph] = {}
    n = 4000
    for _ in range(n):
        _, logp = pg.sample(rng)
        g = pg.last_draw
        assert logp == pytest.approx(pg.log_prob(g))
        key = g.canonical_form() + str(sorted(g.edges)) + str([x.role for x in g.nodes])
        counts[key] = counts.get(key, 0) + 1
        reps[key] = g
    # conditioning on "output has a predecessor" rescales all probabilities by the same factor
    z = sum(math.exp(pg.log_prob(g)) for g in reps.values())
    for key, c in counts.items():
        expected = math.exp(pg.log_prob(reps[key])) / z
        assert c / n == pytest.approx(expected, abs=0.03)


def test_score_function_matches_numeric_gradient(paper):
    space = SearchSpace(paper, MATH, Budget(80.0), output_model=None)
    pg = ProbGraph(space, slots=3)
    rng = np.random.default_rng(5)
    shapes = {k: v.shape for k, v in pg.params().items()}
    pg.set_params({"edge_logits": rng.normal(size=shapes["edge_logits"]),
                   "role_logits": rng.normal(size=shapes["role_logits"]) - 1.5,
                   "model_logits": rng.normal(size=shapes["model_logits"])})
    g = Graph([Node("n1", "llama-3.2-1b"), Node("n2", "llama-3.2-3b", "fuser"), Node("n3", "llama-3.2-1b"),
               Node("out", "llama-3.2-1b")], [("n1", "n2"), ("n3", "n2"), ("n2", "out")], "out")
    grads = pg.score_function(g)
    for name, arr in pg.params().items():
        num = np.zeros_like(arr)
        for idx in np.ndindex(arr.shape):
            logp = []
            for step in (1e-5, -1e-5):
                moved = arr.copy()
                moved[idx] += step
                pg.set_params({name: moved})
                logp.append(pg.log_prob(g))
            pg.set_params({name: arr})
            num[idx] = (logp[0] - logp[1]) / 2e-5
        assert np.allclose(grads[name], num, atol=1e-4), name


def test_state_dict_roundtrip(paper):
    space = SearchSpace(paper, MATH, Budget(42.0))
    pg = ProbGraph(space, slots=4)
    edges = pg.params()["edge_logits"]
    edges[3] = 1.5
    pg.set_params({"edge_logits": edges})
    pg2 = ProbGraph(space, slots=4)
    pg2.load_state_dict(pg.state_dict())
    assert pg2.edge_table() == pg.edge_table()
    with pytest.raises(GraphError):
        ProbGraph(space, slots=3).load_state_dict(pg.state_dict())


def test_random_graph_uses_every_worker_when_it_fits():
    pool = load_pool("local")
    space = SearchSpace(pool, ARITH, Budget.from_nodes(6, pool, ARITH))
    rng = np.random.default_rng(2)
    for _ in range(20):
        g = space.random_graph({"smollm2-135m": 2, "gemma-3-270m": 2}, rng, edge_p=0.2)
        g.validate(models=set(pool.models))
        assert space.fits(g)
        assert g.pruned()[1] == []
    with pytest.raises(GraphError, match="unknown model"):
        space.random_graph({"nope": 1}, rng)


# ----- property: whatever the space samples validates and fits --------------------------------

@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    pool_name=st.sampled_from(["paper", "local", "paper-full"]),
    b=st.integers(min_value=1, max_value=10),
    slack=st.floats(min_value=0.0, max_value=5.0),
    searched_output=st.booleans(),
    seed=st.integers(min_value=0, max_value=2**31 - 1),
    mode=st.sampled_from(["counts", "slots", "random"]),
    logit_scale=st.floats(min_value=0.0, max_value=4.0),
)
def test_sampled_graphs_validate_and_fit(pool_name, b, slack, searched_output, seed, mode, logit_scale):
    pool = load_pool(pool_name)
    lengths = ARITH if pool_name == "local" else MATH
    budget = Budget(reference_bound_units(b, pool, lengths) + slack)
    space = SearchSpace(pool, lengths, budget, output_model=None if searched_output else pool.output)
    rng = np.random.default_rng(seed)
    combos = space.combos()
    assert combos
    counts = combos[int(rng.integers(len(combos)))]
    if mode == "random":
        g = space.random_graph(counts, rng, edge_p=float(rng.uniform(0, 1)), vote_p=float(rng.uniform(0, 1)))
    else:
        pg = ProbGraph(space, counts=counts) if mode == "counts" else ProbGraph(space, slots=int(rng.integers(1, 8)))
        shapes = {k: v.shape for k, v in pg.params().items()}
        pg.set_params({"edge_logits": rng.normal(scale=logit_scale + 1e-9, size=shapes["edge_logits"]) + logit_scale,
                       "role_logits": rng.normal(scale=logit_scale + 1e-9, size=shapes["role_logits"]),
                       "vote_logit": rng.normal(scale=logit_scale + 1e-9, size=shapes["vote_logit"])})
        g, logp = pg.sample(rng)
        assert logp <= 1e-9 and math.isfinite(logp)
    g.validate(models=set(pool.models))
    assert space.fits(g)
    assert g.pruned()[1] == []
    space.check(g)
    assert g.node(g.output).role != "vote" or (g.node(g.output).model is None and g.preds(g.output))


def test_every_sampler_draws_a_vote_output_and_each_draw_validates_and_fits(paper):
    """Random graphs (vote_p), the GPTSwarm distribution (ν) and TPE's `out_vote` variable all
    reach the vote role; a vote output costs nothing, so its graph fits with the same workers."""
    space = SearchSpace(paper, MATH, Budget.from_nodes(4, paper, MATH))
    rng = np.random.default_rng(3)
    pg = ProbGraph(space, counts={"llama-3.2-1b": 3})
    assert pg.vote_prob() == pytest.approx(0.2)
    drawn = [space.random_graph({"llama-3.2-1b": 3}, rng, vote_p=0.5) for _ in range(40)]
    drawn += [pg.sample(rng)[0] for _ in range(60)]
    votes = [g for g in drawn if g.node(g.output).role == "vote"]
    assert 10 <= len(votes) <= 80
    for g in drawn:
        space.check(g)
    for g in votes:  # the vote output adds nothing to the workers' cost
        workers = Graph([n for n in g.nodes if n.id != g.output], [e for e in g.edges if g.output not in e])
        assert space.units(g) == pytest.approx(sum(space.node_units(n.model, g.in_degree(n.id)) for n in workers.nodes))
    assert space.random_graph({"llama-3.2-1b": 3}, np.random.default_rng(1)).node("out").role != "vote"


def test_vote_output_log_prob_and_score(paper):
    """log p(G) counts the vote draw (ν) and drops the unused output model; the score's ν term is
    x − p, the same as an edge's."""
    space = SearchSpace(paper, MATH, Budget.from_nodes(4, paper, MATH), output_model=None)
    pg = ProbGraph(space, counts={"llama-3.2-1b": 2})
    pg.set_params({"vote_logit": np.array([0.7])})
    g = Graph([Node("n1", "llama-3.2-1b"), Node("n2", "llama-3.2-1b"), Node("out", None, "vote")],
              [("n1", "out"), ("n2", "out")], "out")
    as_model = Graph(g.nodes[:2] + [Node("out", "llama-3.2-1b")], g.edges, "out")
    p = pg.vote_prob()
    diff = pg.log_prob(g) - pg.log_prob(as_model)
    out_p = float(pg._output_probs()[pg.models.index("llama-3.2-1b")])
    assert diff == pytest.approx(math.log(p) - math.log(1 - p) - math.log(out_p))
    assert pg.score_function(g)["vote_logit"][0] == pytest.approx(1 - p)
    assert pg.score_function(as_model)["vote_logit"][0] == pytest.approx(-p)


# ----- one definition of each probability: what a table says is what the sampler does ---------

def test_edge_table_prob_is_how_often_the_sampler_keeps_the_edge(paper):
    """The defect: a table showed sigmoid(logit) (0.73 here) while the sampler kept the edge with
    sigmoid(logit − 2) (0.27). n1 → n2 is the first edge of the walk, so it is always considered,
    and out-edges close no cycle, so conditioning on "the output is fed" leaves it independent."""
    space = SearchSpace(paper, MATH, Budget(42.0))
    pg = ProbGraph(space, counts={"llama-3.2-1b": 3})
    idx = {e: i for i, e in enumerate(pg.potential)}
    edges = pg.params()["edge_logits"]
    edges[idx[("n1", "n2")]] = 1.0
    edges[idx[("n1", "out")]] = 6.0
    pg.set_params({"edge_logits": edges})
    shown = {(r["src"], r["dst"]): r["prob"] for r in pg.edge_table()}
    rng = np.random.default_rng(7)
    n = 4000
    kept = 0
    for _ in range(n):
        pg.sample(rng)
        kept += ("n1", "n2") in pg.last_draw.edges
    assert shown[("n1", "n2")] == pytest.approx(1 / (1 + math.exp(1.0)))
    assert kept / n == pytest.approx(shown[("n1", "n2")], abs=0.025)


def test_fuser_table_prob_is_how_often_a_free_node_fuses(paper):
    space = SearchSpace(paper, MATH, Budget(42.0))
    pg = ProbGraph(space, counts={"llama-3.2-1b": 2})
    pg.set_edge_table({("n1", "n2"): 1.0, ("n2", "out"): 1.0, ("n2", "n1"): 0.0, ("n1", "out"): 0.0})
    pg.set_params({"role_logits": np.array([[0.0, 0.0], [0.0, -1.0]])})
    shown = pg.fuser_table()
    assert shown["n2"] == pytest.approx(0.5 + 1 / (1 + math.exp(1.0)))  # the +0.5 prior is included
    rng = np.random.default_rng(3)
    n = 4000
    fused = sum(pg.sample(rng)[0].node("n2").role == "fuser" for _ in range(n))
    assert fused / n == pytest.approx(shown["n2"], abs=0.025)


def test_a_written_probability_is_what_the_sampler_uses(paper):
    """The defect: an agent's 0.9 became sigmoid(logit(0.9) − 2) = 0.549."""
    space = SearchSpace(paper, MATH, Budget(42.0))
    pg = ProbGraph(space, slots=3)
    pg.set_edge_table({("n1", "out"): 0.9, ("n2", "n3"): 0.0, ("n3", "out"): 1.0})
    assert pg.edge_prob("n1", "out") == pytest.approx(0.9, abs=1e-12)
    assert pg.edge_prob("n2", "n3") == pytest.approx(PROB_EPS) and pg.edge_prob("n3", "out") == pytest.approx(1 - PROB_EPS)
    rows = {(r["src"], r["dst"]): r["prob"] for r in pg.edge_table()}
    assert rows[("n1", "out")] == pytest.approx(0.9, abs=1e-12)
    pg.set_fuser_table({"n1": 0.8, "n2": 0.2, "n3": 1.0})
    assert pg.fuser_prob("n1") == pytest.approx(0.8, abs=1e-12) and pg.fuser_table()["n1"] == pg.fuser_prob("n1")
    assert pg.fuser_prob("n2") == pytest.approx(0.5 + PROB_EPS)  # the prior makes < 0.5 unreachable
    assert pg.fuser_prob("n3") == pytest.approx(1 - PROB_EPS)


def test_a_bad_table_entry_names_it_and_writes_nothing(paper):
    space = SearchSpace(paper, MATH, Budget(42.0))
    pg = ProbGraph(space, slots=2)
    before = pg.params()
    with pytest.raises(GraphError, match="n1 -> out: probability 1.5"):
        pg.set_edge_table({("n2", "out"): 0.9, ("n1", "out"): 1.5})
    with pytest.raises(GraphError, match="'n7' is not a worker slot"):
        pg.set_fuser_table({"n1": 0.9, "n7": 0.9})
    with pytest.raises(GraphError, match="fuser n1: probability nan"):
        pg.set_fuser_table({"n1": float("nan")})
    with pytest.raises(GraphError, match="n1 -> n2: probability 'high'"):
        pg.set_edge_table({("n1", "n2"): "high"})
    after = pg.params()
    assert all(np.array_equal(before[k], after[k]) for k in before)


def test_params_are_copies_and_set_params_checks_them(paper):
    space = SearchSpace(paper, MATH, Budget(42.0))
    pg = ProbGraph(space, slots=2)
    params = pg.params()
    params["edge_logits"][:] = 5.0
    assert pg.edge_prob("n1", "out") == pytest.approx(1 / (1 + math.exp(2)))  # untouched
    with pytest.raises(GraphError, match=r"edge_logits: shape \(3,\), expected \(4,\)"):
        pg.set_params({"edge_logits": np.zeros(3)})
    with pytest.raises(GraphError, match="unknown probabilistic-graph parameter 'edges'"):
        pg.set_params({"edges": np.zeros(4)})
    with pytest.raises(GraphError, match="finite"):
        pg.set_params({"role_logits": np.full((2, 2), np.inf)})
    with pytest.raises(GraphError, match="fixed slot models"):
        pg.fixed = ["llama-3.2-1b"]


def test_the_one_sigmoid_logit_softmax():
    xs = np.array([-800.0, -30.0, -2.0, 0.0, 2.0, 30.0, 800.0])
    with np.errstate(over="raise", invalid="raise"):  # no overflow at either end
        ys = sigmoid(xs)
    assert ys[0] == 0.0 and ys[-1] == 1.0 and sigmoid(-2.0) == pytest.approx(0.11920292202211755, rel=1e-12)
    assert isinstance(sigmoid(0.5), float)
    for p in (1e-6, 0.119, 0.5, 0.9, 1 - 1e-6):
        assert sigmoid(logit(p)) == pytest.approx(p, rel=1e-12)
    rows = softmax(np.array([[1000.0, 1000.0], [0.0, math.log(3.0)]]))
    assert np.allclose(rows, [[0.5, 0.5], [0.25, 0.75]])
