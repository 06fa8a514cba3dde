"""Graph files: JSON round trip, the Node-line text form both ways, errors that quote the culprit."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings

from ttsgraph.errors import FileFormatError
from ttsgraph.graph import Graph, Node, chain, parallel_chains, star
from ttsgraph.graph_io import from_text, load_graph, save_graph, to_text
from tests.test_graph import dags


def test_json_file_round_trips_exactly(tmp_path):
    path = tmp_path / "g.json"
    graph = parallel_chains(2, 2, "llama-3.2-1b", "llama-3.2-3b")
    save_graph(graph, path, {"name": "pc"})
    first = path.read_text()
    loaded = load_graph(path)
    assert loaded.to_dict() == graph.to_dict()
    save_graph(loaded, path, {"name": "pc"})
    assert path.read_text() == first
    assert json.loads(first)["name"] == "pc"


def test_core_json_format_is_what_the_docs_say(tmp_path):
    path = tmp_path / "g.json"
    path.write_text(json.dumps({"nodes": [{"id": "a1", "model": "llama-3.2-3b", "role": "assistant"},
                                          {"id": "out", "model": "llama-3.2-3b", "role": "fuser"}],
                                "edges": [["a1", "out"]], "output": "out"}))
    graph = load_graph(path)
    assert graph.node("out").role == "fuser" and graph.edges == [("a1", "out")] and graph.output == "out"


def test_json_syntax_error_names_file_and_line(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{\n  "nodes": [\n    {"id": "a"\n  ]\n}\n')
    with pytest.raises(FileFormatError) as info:
        load_graph(path)
    assert str(path) in str(info.value) and info.value.line in (3, 4)


def test_json_semantic_error_names_the_line_of_the_edge(tmp_path):
    path = tmp_path / "cyc.json"
    path.write_text(json.dumps({"nodes": [{"id": "a", "model": "m"}, {"id": "b", "model": "m"},
                                          {"id": "out", "model": "m"}],
                                "edges": [["a", "b"], ["b", "out"], ["b", "a"]], "output": "out"}, indent=2))
    with pytest.raises(FileFormatError, match="cycle") as info:
        load_graph(path)
    assert info.value.line is not None and ('"a"' in path.read_text().splitlines()[info.value.line - 1]
                                            or '"b"' in path.read_text().splitlines()[info.value.line - 1])


def test_text_form_both_ways():
    graph = star(2, "llama-3.2-1b", "llama-3.2-3b")
    text = to_text(graph)
    assert text.splitlines()[0] == "Node root | model=llama-3.2-1b | role=assistant | preds=[] | succs=[l1, l2]"
    back = from_text(text)
    assert back.canonical_hash() == graph.canonical_hash()
    assert set(back.edges) == set(graph.edges) and back.output == "out"


@settings(max_examples=80, deadline=None)
@given(dags())
def test_text_round_trip_property(graph):
    try:
        graph.validate()
    except Exception:
        return
    back = from_text(to_text(graph))
    assert back.canonical_hash() == graph.canonical_hash()


def test_text_form_is_tolerant_of_spacing_case_and_paper_role_names():
    text = """Here is the graph:
      node A |MODEL = llama-3.2-1b|Role=IO | preds = [ ] | succs=[ B ]
    NODE B | model=llama-3.2-1b | role=rev | preds=[A] | succs=[Final]
    Node Final | model=llama-3.2-3b | role=io | preds=[B, A] | succs=[]
    """
    graph = from_text(text)
    assert graph.node("B").role == "fuser" and graph.node("A").role == "assistant"
    assert graph.output == "Final" and set(graph.edges) == {("A", "B"), ("B", "Final"), ("A", "Final")}


def test_text_form_is_strict_about_ids_and_quotes_the_line():
    text = "Node a | model=m | role=IO | preds=[] | succs=[out]\nNode out | model=m | role=IO | preds=[a, zz] | succs=[]"
    with pytest.raises(FileFormatError) as info:
        from_text(text)
    assert "unknown node id 'zz'" in str(info.value) and "preds=[a, zz]" in str(info.value)
    assert info.value.line == 2


def test_text_form_known_ids_forbid_renaming_and_missing_nodes():
    text = "Node a1 | model=m | role=IO | preds=[] | succs=[out]\nNode out | model=m | role=IO | preds=[a1] | succs=[]"
    with pytest.raises(FileFormatError, match="unknown node id 'a1'"):
        from_text(text, known_ids={"a", "out"})
    with pytest.raises(FileFormatError, match="missing from the reply: b"):
        from_text(text.replace("a1", "a"), known_ids={"a", "b", "out"})


def test_text_form_rejects_bad_roles_lists_and_cycles_with_line():
    with pytest.raises(FileFormatError, match="unknown role 'boss'"):
        from_text("Node a | model=m | role=boss | preds=[] | succs=[]")
    with pytest.raises(FileFormatError, match="expected a \\[list\\]"):
        from_text("Node a | model=m | role=IO | preds=b | succs=[]")
    with pytest.raises(FileFormatError, match="no model="):
        from_text("Node a | role=IO | preds=[] | succs=[]")
    with pytest.raises(FileFormatError, match="cycle") as info:
        from_text("Node a | model=m | preds=[b] | succs=[out]\nNode b | model=m | preds=[a]\nNode out | model=m")
    assert info.value.line in (1, 2)
    with pytest.raises(FileFormatError, match="no 'Node"):
        from_text("just prose")


def test_text_graph_file(tmp_path):
    path = tmp_path / "g.txt"
    path.write_text(to_text(chain(2, "m")) + "\n")
    assert load_graph(path).to_dict() == chain(2, "m").to_dict()
    path.write_text("Node a | model=m | preds=[nope]\n")
    with pytest.raises(FileFormatError) as info:
        load_graph(path)
    assert str(info.value).startswith(f"{path}:1:")


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileFormatError, match="cannot read graph file"):
        load_graph(tmp_path / "nope.json")


def test_examples_are_valid(repo_root=None):
    from pathlib import Path

    from ttsgraph.models import builtin_catalogue

    examples = sorted((Path(__file__).parent.parent / "examples").glob("*.json"))
    assert len(examples) >= 4
    for path in examples:
        load_graph(path).validate(set(builtin_catalogue()))


def test_graph_with_explicit_dead_nodes_loads_and_prunes(tmp_path):
    graph = Graph([Node("a", "m"), Node("dead", "m"), Node("out", "m")], [("a", "out")], "out")
    path = tmp_path / "g.json"
    save_graph(graph, path)
    assert load_graph(path).pruned()[1] == ["dead"]
