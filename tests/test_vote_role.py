"""The vote role end to end: the role registry, every graph format, validation, cost, `show`, the
executor's majority (ties, answerless predecessors, no backend call, 0 FLOPs) and repair."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ttsgraph.cli import app
from ttsgraph.cost import Budget, planned_graph_flops, planned_units
from ttsgraph.errors import BudgetError, FileFormatError, GraphError, TaskError
from ttsgraph.executor import Executor
from ttsgraph.graph import Graph, Node, self_consistency, single
from ttsgraph.graph_io import from_text, load_graph, save_graph, to_text
from ttsgraph.llm.base import Message
from ttsgraph.llm.fake import ScriptedBackend
from ttsgraph.llm.router import build_backend
from ttsgraph.models import load_pool
from ttsgraph.render import to_dot, to_mermaid
from ttsgraph.roles import MODEL_ROLES, ROLES, normalize_role, role_spec
from ttsgraph.search.space import SearchSpace
from ttsgraph.tasks.arithmetic import ArithmeticTask
from ttsgraph.vote import vote_text

SMOL, GEMMA = "smollm2-135m", "gemma-3-270m"


@pytest.fixture(scope="module")
def task() -> ArithmeticTask:
    return ArithmeticTask(seed=7, size=20)


def test_registry_lists_vote_as_a_role_without_a_model() -> None:
    assert ROLES == ("assistant", "fuser", "vote") and MODEL_ROLES == ("assistant", "fuser")
    assert normalize_role("VOTE") == "vote" and normalize_role("rev") == "fuser"
    assert not role_spec("vote").calls_model and role_spec("vote").prompt is None
    with pytest.raises(GraphError, match="unknown role 'poll'"):
        normalize_role("poll")


def test_self_consistency_builder_and_json_round_trip(tmp_path: Path) -> None:
    g = self_consistency(3, SMOL)
    g.validate(models={SMOL})
    assert g.ids == ["n1", "n2", "n3", "out"] and g.node("out") == Node("out", None, "vote")
    data = g.to_dict()
    assert data["nodes"][-1] == {"id": "out", "role": "vote"}  # no "model" key
    assert data["nodes"][0] == {"id": "n1", "model": SMOL, "role": "assistant"}
    save_graph(g, tmp_path / "sc.json")
    back = load_graph(tmp_path / "sc.json")
    assert back.to_dict() == data and back.canonical_hash() == g.canonical_hash()
    explicit_null = dict(data, nodes=[*data["nodes"][:-1], {"id": "out", "model": None, "role": "vote"}])
    assert Graph.from_dict(explicit_null).to_dict() == data
    assert g.models_used() == {SMOL: 3}


def test_text_form_round_trips_a_vote_without_a_model_field() -> None:
    g = self_consistency(2, GEMMA)
    text = to_text(g)
    assert "Node out | role=vote | preds=[n1, n2] | succs=[]" in text
    assert from_text(text).to_dict() == g.to_dict()
    spelled = text.replace("Node out | role=vote", "Node out | model=none | role=vote")
    assert from_text(spelled).to_dict() == g.to_dict()


def test_canonical_hash_tells_a_vote_from_a_fuser() -> None:
    vote = self_consistency(2, SMOL)
    fuse = Graph([Node("n1", SMOL), Node("n2", SMOL), Node("out", SMOL, "fuser")], vote.edges, "out")
    renamed = vote.relabeled({"n1": "a", "n2": "b", "out": "v"})
    assert vote.canonical_hash() != fuse.canonical_hash()
    assert vote.canonical_hash() == renamed.canonical_hash()


@pytest.mark.parametrize("nodes, edges, message", [
    ([Node("n1", SMOL), Node("out", None, "vote")], [], "vote node 'out' has no predecessor"),
    ([Node("n1", SMOL), Node("out", SMOL, "vote")], [("n1", "out")], "vote node 'out' calls no model"),
    ([Node("n1", None), Node("out", SMOL)], [("n1", "out")], "node 'n1' (assistant) has no model"),
])
def test_validation_errors_are_one_line_naming_the_node(nodes, edges, message) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(GraphError, match=re.escape(message)) as info:
        Graph(nodes, edges, "out").validate(models={SMOL})
    assert "\n" not in str(info.value) and info.value.node in ("n1", "out")


def test_vote_json_errors_name_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"nodes": [{"id": "n1", "model": SMOL}, {"id": "out", "role": "vote"}],
                                "edges": [], "output": "out"}, indent=1))
    with pytest.raises(FileFormatError, match="vote node 'out' has no predecessor") as info:
        load_graph(path)
    assert info.value.line is not None
    with pytest.raises(GraphError, match=r"nodes\[0\] \('n1', assistant\) has no 'model'"):
        Graph.from_dict({"nodes": [{"id": "n1"}], "edges": []})


def test_a_vote_predecessor_may_have_any_role_and_feed_on_votes() -> None:
    g = Graph([Node("a", SMOL), Node("b", SMOL), Node("v", None, "vote"), Node("f", SMOL, "fuser"),
               Node("out", None, "vote")],
              [("a", "v"), ("b", "v"), ("a", "f"), ("v", "out"), ("f", "out")], "out")
    g.validate(models={SMOL})


def test_vote_costs_nothing_and_adds_nothing_to_its_successor(pool) -> None:  # type: ignore[no-untyped-def]
    lengths = ArithmeticTask(seed=7, size=20).lengths
    sc = self_consistency(3, SMOL)
    flops = planned_graph_flops(sc, pool, lengths)
    assert flops["out"] == 0.0 and flops["n1"] == planned_graph_flops(single(SMOL), pool, lengths)["out"]
    assert planned_units(sc, pool, lengths) == pytest.approx(3 * planned_units(single(SMOL), pool, lengths))


def test_show_renders_a_vote_in_every_format(tmp_path: Path) -> None:
    g = self_consistency(2, SMOL)
    path = tmp_path / "sc.json"
    save_graph(g, path)
    assert '  out(("out: vote (output)"))' in to_mermaid(g)
    assert 'out: vote (output)' in to_dot(g)
    worker_vote = Graph([Node("a", SMOL), Node("v", None, "vote"), Node("out", SMOL)], [("a", "v"), ("v", "out")])
    assert '  v{"v: vote"}' in to_mermaid(worker_vote) and "shape=diamond" in to_dot(worker_vote)
    runner = CliRunner()
    info = json.loads(runner.invoke(app, ["show", str(path), "--task", "arithmetic", "--json"]).stdout)
    out = next(n for n in info["nodes"] if n["id"] == "out")
    assert out["model"] is None and out["role"] == "vote" and out["planned_flops"] == 0.0
    table = runner.invoke(app, ["show", str(path), "--task", "arithmetic"])
    assert table.exit_code == 0 and "vote" in table.stdout
    for fmt, needle in (("mermaid", "out: vote"), ("dot", "out: vote")):
        shown = runner.invoke(app, ["show", str(path), "--format", fmt])
        assert shown.exit_code == 0 and needle in shown.stdout, shown.output


def replies(by_model_sample: dict[tuple[str, int], str]):  # type: ignore[no-untyped-def]
    def respond(model: str, messages: list[Message], sample: int) -> str:
        return by_model_sample[(model, sample)]
    return respond


def run_vote(task, pool, graph: Graph, answers: dict[tuple[str, int], str]):  # type: ignore[no-untyped-def]
    scripted = ScriptedBackend(replies(answers))
    ex = Executor(build_backend(pool, None, fake=scripted), pool, task)
    result = asyncio.run(ex.run_item(graph, task.items("search")[0]))
    return result, scripted


def test_executor_votes_the_majority_with_no_call_and_zero_flops(task, pool) -> None:  # type: ignore[no-untyped-def]
    gold = task.items("search")[0].answer
    result, scripted = run_vote(task, pool, self_consistency(3, SMOL), {
        (SMOL, 0): "Answer: 999999", (SMOL, 1): f"so. Answer: {gold}", (SMOL, 2): f"Answer: {gold}"})
    assert result.error is None and result.correct and result.output_text == f"so. Answer: {gold}"
    assert len(scripted.calls) == 3 and all(c.model == SMOL for c in scripted.calls)
    vote = next(t for t in result.nodes if t.id == "out")
    assert vote.model is None and not vote.called and vote.flops == 0.0 and vote.seconds == 0.0
    assert result.measured_flops == sum(t.flops for t in result.nodes if t.id != "out") > 0


def test_vote_ties_go_to_the_earliest_predecessor_in_topological_order(task, pool) -> None:  # type: ignore[no-untyped-def]
    # edges listed out of order: the vote still ranks n1 before n2
    g = Graph([Node("n1", SMOL), Node("n2", GEMMA), Node("out", None, "vote")], [("n2", "out"), ("n1", "out")])
    result, _ = run_vote(task, pool, g, {(SMOL, 0): "Answer: 1", (GEMMA, 0): "Answer: 2"})
    assert result.output_text == "Answer: 1"


def test_answerless_predecessors_do_not_vote(task, pool) -> None:  # type: ignore[no-untyped-def]
    result, _ = run_vote(task, pool, self_consistency(3, SMOL),
                         {(SMOL, 0): "no idea", (SMOL, 1): "still no idea", (SMOL, 2): "Answer: 5"})
    assert result.output_text == "Answer: 5"
    none, _ = run_vote(task, pool, self_consistency(2, SMOL), {(SMOL, 0): "no idea", (SMOL, 1): "hmm"})
    assert none.output_text == "no idea" and not none.correct and none.error is None


def test_a_worker_vote_feeds_its_winner_to_the_next_node(task, pool) -> None:  # type: ignore[no-untyped-def]
    g = Graph([Node("n1", SMOL), Node("n2", SMOL), Node("v", None, "vote"), Node("out", GEMMA)],
              [("n1", "v"), ("n2", "v"), ("v", "out")], "out")
    seen: list[str] = []

    def respond(model: str, messages: list[Message], sample: int) -> str:
        if model == GEMMA:
            seen.append(messages[-1]["content"])
            return "Answer: 7"
        return "Answer: 3" if sample == 0 else "Answer: 4"

    ex = Executor(build_backend(pool, None, fake=ScriptedBackend(respond)), pool, task)
    result = asyncio.run(ex.run_item(g, task.items("search")[0]))
    assert result.output_text == "Answer: 7" and len(seen) == 1 and "[1]\nAnswer: 3" in seen[0]
    assert "[2]" not in seen[0]  # the successor reads one answer: the vote's


def test_prompt_only_runs_need_an_extractor(task, pool) -> None:  # type: ignore[no-untyped-def]
    ex = Executor(build_backend(pool, None, fake=ScriptedBackend(lambda m, msgs, s: f"x{s}")), pool, task)
    g = ex.prepare(self_consistency(2, SMOL))

    def prompts(role: str, preds: list[str], is_output: bool) -> list[Message]:
        return [{"role": "user", "content": "q"}]

    run = asyncio.run(ex.run(g, prompts, extract=lambda text: "same"))
    assert run.output_text == "x0"
    streamed: list[str] = []
    run = asyncio.run(ex.run(g, prompts, extract=lambda text: text if text == "x1" else None,
                             on_output=streamed.append))
    assert run.output_text == "x1" and streamed == ["x1"]
    ex.task = type("Pricing", (), {"name": "p", "lengths": task.lengths})()
    run = asyncio.run(ex.run(g, prompts))
    assert run.output_text is None and "needs an answer extractor" in (run.error or "")


def test_a_vote_has_no_prompt(task) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(TaskError, match="vote node makes no LLM call"):
        task.messages(task.items("search")[0], "vote", ["a"], True)


def test_vote_text_is_the_one_majority_rule() -> None:
    extract = lambda t: t.split(":")[-1].strip() or None  # noqa: E731
    assert vote_text(["a: 1", "b: 2", "c: 2"], extract) == "b: 2"
    assert vote_text(["a: 1", "b: 2"], extract) == "a: 1"
    assert vote_text(["a:", "b:"], extract) == "a:"


def test_repair_never_deletes_a_vote_and_drops_votes_left_empty(pool) -> None:  # type: ignore[no-untyped-def]
    lengths = ArithmeticTask(seed=7, size=20).lengths
    space = SearchSpace(pool, lengths, Budget.from_nodes(2, pool, lengths))
    big = self_consistency(12, GEMMA)
    fixed, removed = space.repair(big)
    assert space.fits(fixed) and fixed.node("out").role == "vote" and "out" not in removed
    space.check(fixed)
    inner = Graph([Node("a", GEMMA), Node("v", None, "vote"), Node("b", GEMMA)] +
                  [Node(f"c{i}", GEMMA) for i in range(8)] + [Node("out", pool.output)],
                  [("a", "v"), ("v", "out"), ("b", "out")] + [(f"c{i}", "out") for i in range(8)], "out")
    fixed, removed = space.repair(inner)
    fixed.validate()
    assert space.fits(fixed)
    if "a" in removed:
        assert "v" in removed
    paper = load_pool("paper")
    tiny = SearchSpace(paper, lengths, Budget(1.5, nodes=1), output_model=None)
    with pytest.raises(BudgetError, match="smallest graph left"):
        tiny.repair(self_consistency(2, "llama-3.1-8b"))


def test_budget_filling_is_a_typed_option_of_every_mix_drawing_optimizer(pool) -> None:  # type: ignore[no-untyped-def]
    from ttsgraph.search.base import MixOptions, get_optimizer
    from ttsgraph.search.random_search import RandomSearch

    for name in ("random", "tpe", "reinforce", "agent-reinforce", "textgrad", "hybrid"):
        options = get_optimizer(name).Options
        assert issubclass(options, MixOptions) and options().budget_filling is False
        assert options.parse(name, {"budget_filling": True}).budget_filling is True
    lengths = ArithmeticTask(seed=7, size=20).lengths
    space = SearchSpace(pool, lengths, Budget.from_nodes(3, pool, lengths))
    assert RandomSearch(space)._combos == space.combos()
    assert RandomSearch(space, budget_filling=True)._combos == space.combos(budget_filling=True)
    assert len(space.combos()) > len(space.combos(budget_filling=True))


def test_the_paper_recipe_fills_the_budget() -> None:
    from ttsgraph.config import load_recipe

    recipe = Path(__file__).resolve().parent.parent / "examples/recipes/paper-math-b4.toml"
    assert load_recipe(recipe)["optimizer"]["options"]["budget_filling"] is True
