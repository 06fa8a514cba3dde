"""Graph validation, pruning, metrics, builders and the canonical hash."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ttsgraph.errors import GraphError
from ttsgraph.graph import Graph, Node, chain, parallel, parallel_chains, single, star, tree

MODELS = {"m1", "m3"}


def g(nodes, edges, output="out"):
    return Graph([Node(*n) for n in nodes], edges, output)


def raises(graph: Graph, match: str, *, node=None, edge=None, models=MODELS):
    with pytest.raises(GraphError, match=match) as info:
        graph.validate(models)
    if node is not None:
        assert info.value.node == node
    if edge is not None:
        assert info.value.edge == edge
    return info.value


def test_valid_graph_passes():
    g([("a", "m1"), ("b", "m1"), ("out", "m3")], [("a", "out"), ("b", "out")]).validate(MODELS)


def test_cycle_names_its_nodes():
    err = raises(g([("a", "m1"), ("b", "m1"), ("out", "m3")], [("a", "b"), ("b", "a"), ("b", "out")]), "cycle")
    assert "a -> b -> a" in str(err) or "b -> a -> b" in str(err)
    assert err.edge in {("a", "b"), ("b", "a")}


def test_edge_to_unknown_node():
    raises(g([("a", "m1"), ("out", "m3")], [("a", "out"), ("a", "ghost")]), "ghost", node="ghost", edge=("a", "ghost"))


def test_no_sink():
    graph = Graph([Node("a", "m1"), Node("b", "m1")], [("a", "b"), ("b", "a")])
    with pytest.raises(GraphError, match="cycle|no sink"):
        graph.validate(MODELS)


def test_no_sink_when_every_node_has_a_successor():
    graph = Graph([Node("a", "m1")], [("a", "a")])
    assert graph.output == ""
    with pytest.raises(GraphError):
        graph.validate(MODELS)


def test_several_sinks_are_named():
    graph = Graph([Node("a", "m1"), Node("b", "m1"), Node("c", "m1")], [("a", "b")])
    err = raises(graph, "several sinks")
    assert "b" in str(err) and "c" in str(err)


def test_output_must_be_the_sink():
    raises(g([("out", "m1"), ("b", "m1")], [("out", "b")]), "output node 'out' has successors", node="out")


def test_fuser_without_assistant_predecessor():
    raises(g([("f", "m1", "fuser"), ("out", "m3")], [("f", "out")]), "fuser 'f' has no assistant predecessor", node="f")


def test_fuser_fed_by_fuser():
    graph = g([("a", "m1"), ("f1", "m1", "fuser"), ("f2", "m1", "fuser"), ("out", "m3")],
              [("a", "f1"), ("a", "f2"), ("f1", "f2"), ("f2", "out")])
    raises(graph, "fuser 'f2' is fed by fuser 'f1'", node="f2", edge=("f1", "f2"))


def test_unknown_model():
    raises(g([("a", "gpt-9"), ("out", "m3")], [("a", "out")]), "unknown model 'gpt-9'", node="a")


def test_empty_graph():
    with pytest.raises(GraphError, match="empty graph"):
        Graph([], [], "").validate(MODELS)


def test_duplicate_id_and_self_loop():
    raises(Graph([Node("a", "m1"), Node("a", "m1")], [], "a"), "duplicate node id 'a'", node="a")
    raises(g([("a", "m1"), ("out", "m1")], [("a", "a"), ("a", "out")]), "self-loop", edge=("a", "a"))


def test_dead_nodes_are_pruned_and_reported():
    graph = g([("a", "m1"), ("dead", "m1"), ("dead2", "m1"), ("out", "m3")], [("a", "out"), ("dead2", "dead")])
    graph.validate(MODELS)
    pruned, removed = graph.pruned()
    assert removed == ["dead", "dead2"]
    assert pruned.ids == ["a", "out"] and pruned.edges == [("a", "out")]
    assert graph.pruned()[0].pruned()[1] == []


def test_width_and_depth_of_classic_shapes():
    assert (single("m1").width, single("m1").depth) == (1, 1)
    assert (parallel(5, "m1").width, parallel(5, "m1").depth) == (5, 1)
    assert (chain(4, "m1").width, chain(4, "m1").depth) == (1, 4)
    pc = parallel_chains(3, 2, "m1")
    assert (pc.width, pc.depth) == (3, 2)
    t = tree(2, 2, "m1")
    assert (t.width, t.depth) == (4, 2) and len(t.nodes) == 7
    s = star(3, "m1")
    assert (s.width, s.depth) == (3, 2)
    for shape in (single("m1"), parallel(3, "m1"), chain(3, "m1"), pc, t, s):
        shape.validate(MODELS)
        assert shape.pruned()[1] == []


def test_parallel_builder_defaults_to_a_fusing_output():
    p = parallel(3, ["m1", "m3", "m1"], output_model="m3")
    assert p.node("out").role == "fuser" and p.node("out").model == "m3"
    assert p.in_degree("out") == 3


def test_builders_reject_bad_sizes():
    for call in (lambda: chain(0, "m1"), lambda: parallel(0, "m1"), lambda: parallel_chains(0, 1, "m1"),
                 lambda: tree(0, 2, "m1"), lambda: star(0, "m1")):
        with pytest.raises(GraphError):
            call()


def test_canonical_hash_distinguishes_structure_models_and_roles():
    base = parallel(3, "m1", "m3", "assistant")
    assert base.canonical_hash() != chain(3, "m1", "m3").canonical_hash()
    assert base.canonical_hash() != parallel(3, "m1", "m1", "assistant").canonical_hash()
    assert base.canonical_hash() != parallel(3, "m1", "m3", "fuser").canonical_hash()
    assert base.canonical_hash() != parallel(2, "m1", "m3", "assistant").canonical_hash()


@st.composite
def dags(draw):
    n = draw(st.integers(1, 7))
    models = draw(st.lists(st.sampled_from(["m1", "m3"]), min_size=n, max_size=n))
    roles = draw(st.lists(st.sampled_from(["assistant", "fuser"]), min_size=n, max_size=n))
    nodes = [Node(f"v{i}", models[i], roles[i]) for i in range(n)]
    edges = [(f"v{i}", f"v{j}") for i in range(n) for j in range(i + 1, n) if draw(st.booleans())]
    edges += [(f"v{i}", "out") for i in range(n) if draw(st.booleans())]
    return Graph(nodes + [Node("out", "m3")], edges, "out")


@settings(max_examples=150, deadline=None)
@given(dags(), st.randoms(use_true_random=False))
def test_canonical_hash_is_invariant_under_renaming_and_reordering(graph, rnd):
    ids = graph.ids
    new_names = [f"x{k}" for k in range(len(ids))]
    rnd.shuffle(new_names)
    renamed = graph.relabeled(dict(zip(ids, new_names)))
    rnd.shuffle(renamed.nodes)
    rnd.shuffle(renamed.edges)
    assert renamed.canonical_hash() == graph.canonical_hash()


@settings(max_examples=100, deadline=None)
@given(dags())
def test_dict_round_trip_is_exact(graph):
    assert Graph.from_dict(graph.to_dict()).to_dict() == graph.to_dict()
