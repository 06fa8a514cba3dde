"""Agent replies: every rule of SPEC §4.3 is enforced with an error the agent can act on, in both
the JSON (schema) form and the paper's text form; prompts and schemas say what the rules say."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ttsgraph.errors import AgentReplyError
from ttsgraph.search import agent_prompts as P
from ttsgraph.search.agent_replies import Rules, extract_json, parse_init_reply, parse_update_reply

S, G = "smollm2-135m", "gemma-3-270m"
IDS = ("n1", "n2", "n3", "out")
EDGES = (("n1", "n2"), ("n1", "n3"), ("n2", "n3"), ("n1", "out"), ("n2", "out"), ("n3", "out"))


def rules(latency: bool = False, counts: dict[str, int] | None = None) -> Rules:
    return Rules(ids=IDS, output_id="out", output_model=S, output_role="assistant", models=(S, G),
                 counts=counts or {S: 1, G: 2}, edges=EDGES, latency=latency)


def reply(graph: dict, table: dict | None = None) -> str:
    return json.dumps({"graph": graph, "edge_probabilities": table or {"n1->n2": 0.7, "n2->out": 0.9}})


GOOD = {"n1": {"model": G, "role": "assistant", "preds": []},
        "n2": {"model": G, "role": "assistant", "preds": ["n1"]},
        "n3": {"model": S, "role": "fuser", "preds": ["n1", "n2"]},
        "out": {"model": S, "role": "assistant", "preds": ["n3", "n2"]}}


def with_node(node: str, **changes: object) -> dict:
    g = json.loads(json.dumps(GOOD))
    g[node].update(changes)
    return g


def test_a_valid_json_reply_becomes_the_graph_and_the_table() -> None:
    r = parse_update_reply("Here you go:\n```json\n" + reply(GOOD) + "\n```", rules())
    assert r.form == "json"
    assert set(r.graph.edges) == {("n1", "n2"), ("n1", "n3"), ("n2", "n3"), ("n3", "out"), ("n2", "out")}
    assert r.graph.node("n3").role == "fuser" and r.graph.output == "out"
    assert r.table == {("n1", "n2"): 0.7, ("n2", "out"): 0.9}


def test_the_paper_text_form_is_accepted() -> None:
    text = (
        "Reasoning: widen the graph first.\n"
        'Graph:\n"Node n1 | model=gemma-3-270m | role=IO | preds=[] | succs=[n2]\\n'
        "Node n2 | model=gemma-3-270m | role=IO | preds=[n1] | succs=[out]\\n"
        "Node n3 | model=smollm2-135m | role=IO | preds=[] | succs=[out]\\n"
        'Node out | model=smollm2-135m | role=IO | preds=[n2, n3] | succs=[]"\n'
        "Edge-probabilities:\n"
        "['0: src=DirectAnswer(n1), dst=DirectAnswer(n2), prob=0.600', '1: src=n3, dst=FinalDecision(out), prob=0.350']\n"
    )
    r = parse_update_reply(text, rules())
    assert r.form == "text"
    assert set(r.graph.edges) == {("n1", "n2"), ("n2", "out"), ("n3", "out")}
    assert r.table == {("n1", "n2"): 0.6, ("n3", "out"): 0.35}


@pytest.mark.parametrize(
    ("graph", "needle"),
    [
        (with_node("n2", preds=["n9"]), "unknown predecessor 'n9'"),
        ({**GOOD, "n7": {"model": G, "role": "assistant", "preds": []}}, "unknown node id 'n7'"),
        ({k: v for k, v in GOOD.items() if k != "n3"}, "missing from the reply: n3"),
        (with_node("n1", preds=["n3"]), "cycle"),
        (with_node("n1", model=S), "R1: the model counts"),
        (with_node("out", model=G), "R6"),
        (with_node("out", role="fuser"), "R6"),
        (with_node("n2", role="fuser", preds=["n1"]) | {"n3": {"model": S, "role": "fuser", "preds": ["n2"]}},
         "fuser -> fuser"),
        (with_node("n1", model="llama-3.1-8b"), "not among"),
        (with_node("out", preds=[]) | {"n3": {"model": S, "role": "assistant", "preds": []}}, "no predecessors"),
    ],
)
def test_rule_breaking_replies_are_rejected_with_the_reason(graph: dict, needle: str) -> None:
    with pytest.raises(AgentReplyError) as info:
        parse_update_reply(reply(graph), rules())
    assert needle in str(info.value)


def test_cyclic_text_reply_quotes_the_offending_line() -> None:
    text = ("Graph:\nNode n1 | model=gemma-3-270m | role=IO | preds=[n2] | succs=[]\n"
            "Node n2 | model=gemma-3-270m | role=IO | preds=[n1] | succs=[out]\n"
            "Node n3 | model=smollm2-135m | role=IO | preds=[] | succs=[out]\n"
            "Node out | model=smollm2-135m | role=IO | preds=[] | succs=[]\n")
    with pytest.raises(AgentReplyError, match="cycle"):
        parse_update_reply(text, rules())


def test_renamed_ids_in_text_form_are_rejected() -> None:
    text = ("Graph:\nNode a | model=gemma-3-270m | role=IO | preds=[] | succs=[out]\n"
            "Node n2 | model=gemma-3-270m | role=IO | preds=[] | succs=[out]\n"
            "Node n3 | model=smollm2-135m | role=IO | preds=[] | succs=[out]\n"
            "Node out | model=smollm2-135m | role=IO | preds=[] | succs=[]\n")
    with pytest.raises(AgentReplyError, match="unknown node id 'a'"):
        parse_update_reply(text, rules())


@pytest.mark.parametrize(("table", "needle"), [({"n1->n2": 1.5}, "outside [0, 1]"), ({"n1->n8": 0.5}, "unknown node"),
                                                ({"n1": 0.5}, "src->dst"), ({"n1->n2": "high"}, "not a number")])
def test_bad_tables_are_rejected(table: dict, needle: str) -> None:
    with pytest.raises(AgentReplyError, match=needle.replace("[", r"\[").replace("]", r"\]")):
        parse_update_reply(reply(GOOD, table), rules())


def test_cjk_text_is_rejected() -> None:
    with pytest.raises(AgentReplyError, match="CJK"):
        parse_update_reply("我们先思考。" + reply(GOOD), rules())


def test_garbage_is_rejected() -> None:
    with pytest.raises(AgentReplyError, match="neither a JSON object"):
        parse_update_reply("I think the graph is fine as it is.", rules())


def test_latency_objective_relaxes_r1_but_unused_nodes_get_no_edges() -> None:
    # n3 unused (no edges), fewer nodes than required: fine under the latency objective
    g = {"n1": {"model": G, "role": "assistant", "preds": []}, "n2": {"model": G, "role": "assistant", "preds": []},
         "n3": {"model": S, "role": "assistant", "preds": []},
         "out": {"model": S, "role": "assistant", "preds": ["n1"]}}
    r = parse_update_reply(reply(g), rules(latency=True))
    assert r.graph.pruned()[1] == ["n2", "n3"]
    g["n2"]["preds"] = ["n3"]  # n2, n3 unused but wired together
    with pytest.raises(AgentReplyError, match="unused node"):
        parse_update_reply(reply(g), rules(latency=True))
    # more of a model than allowed is still an error
    g = with_node("n3", model=G)
    with pytest.raises(AgentReplyError, match="more nodes of gemma"):
        parse_update_reply(reply(g), rules(latency=True))


COMBOS = [{S: 0, G: 3}, {S: 1, G: 2}, {S: 3, G: 0}]


@pytest.mark.parametrize("text", ['{"picks": [1, 2]}', "[1, 2]", '{"smollm2-135m": 1, "gemma-3-270m": 2}\n{"smollm2-135m": 3}'])
def test_init_replies_in_every_form(text: str) -> None:
    assert parse_init_reply(text, COMBOS) == [{S: 1, G: 2}, {S: 3}]


@pytest.mark.parametrize(("text", "needle"), [('{"picks": [5, 1]}', "not one of the option indices"),
                                              ('{"smollm2-135m": 2}', "not one of the listed options"),
                                              ("no idea", "found none"), ('{"picks": [true]}', "not an option index")])
def test_bad_init_replies(text: str, needle: str) -> None:
    with pytest.raises(AgentReplyError, match=needle):
        parse_init_reply(text, COMBOS)


def test_extract_json_skips_prose_and_broken_braces() -> None:
    assert extract_json('think {not json} then {"a": [1, {"b": 2}]} trailing') == {"a": [1, {"b": 2}]}


def test_update_schema_fixes_ids_output_and_orders_predecessors() -> None:
    schema = P.update_schema(list(IDS), "out", [S, G], S, "assistant", list(EDGES))
    assert list(schema["properties"]) == ["graph", "edge_probabilities"]  # the graph is written first
    nodes = schema["properties"]["graph"]["properties"]
    assert schema["properties"]["graph"]["required"] == list(IDS)
    answering, voting = (v["properties"] for v in nodes["out"]["anyOf"])  # the output may vote instead (issue 11)
    assert answering["model"] == {"enum": [S]} and answering["role"] == {"enum": ["assistant"]}
    assert voting["role"] == {"enum": ["vote"]}
    for out in (answering, voting):
        assert out["preds"]["items"] == {"enum": ["n1", "n2", "n3"]} and out["preds"]["minItems"] == 1
    ablated = P.update_schema(list(IDS), "out", [S, G], S, "assistant", list(EDGES), assistants_only=True)
    assert ablated["properties"]["graph"]["properties"]["out"]["properties"]["role"] == {"enum": ["assistant"]}
    assert nodes["n1"]["properties"]["preds"] == {"const": []}  # the first worker can have no predecessor
    assert nodes["n1"]["properties"]["role"] == {"enum": ["assistant"]}  # so it cannot be a fuser
    assistant, fuser = nodes["n3"]["anyOf"]
    assert assistant["properties"]["preds"]["items"] == {"enum": ["n1", "n2"]}
    assert fuser["properties"]["role"] == {"enum": ["fuser"]} and fuser["properties"]["preds"]["minItems"] == 1
    table = schema["properties"]["edge_probabilities"]
    assert table["required"] == [P.edge_key(u, v) for u, v in EDGES]
    assert table["properties"]["n1->n2"]["enum"][0] == 0.0 and table["properties"]["n1->n2"]["enum"][-1] == 1.0


def test_the_output_node_may_become_a_vote_in_both_reply_forms() -> None:
    """R6 lets the output vote (a majority over its predecessors, no model call): a JSON reply and
    a text reply that make it one give a graph whose output calls no model, whatever model the
    reply wrote for it; a worker that votes is refused, and so is a vote in the role ablation."""
    from dataclasses import replace

    from ttsgraph.graph import Node

    preds = {"n1": {"model": S, "role": "assistant", "preds": []}, "n2": {"model": G, "role": "assistant", "preds": []},
             "n3": {"model": G, "role": "assistant", "preds": []}}
    reply = json.dumps({"graph": {**preds, "out": {"model": S, "role": "vote", "preds": ["n1", "n2", "n3"]}},
                        "edge_probabilities": {}})
    graph = parse_update_reply(reply, rules()).graph
    assert graph.node("out") == Node("out", None, "vote") and sorted(graph.preds("out")) == ["n1", "n2", "n3"]
    text = ("Graph:\n" + "\n".join(f"Node {i} | model={m} | role=assistant | preds=[] | succs=[out]"
                                    for i, m in (("n1", S), ("n2", G), ("n3", G)))
            + f"\nNode out | model={S} | role=vote | preds=[n1, n2, n3] | succs=[]\nEdge-probabilities:\n[]")
    assert parse_update_reply(text, rules()).graph.node("out") == Node("out", None, "vote")
    worker_vote = json.dumps({"graph": {**preds, "n3": {"model": G, "role": "vote", "preds": ["n1"]},
                                        "out": {"model": S, "role": "assistant", "preds": ["n2", "n3"]}},
                              "edge_probabilities": {}})
    with pytest.raises(AgentReplyError, match="node 'n3' is a vote: only the output node 'out' may vote"):
        parse_update_reply(worker_vote, rules())
    with pytest.raises(AgentReplyError, match="R6: the output node 'out' must keep model"):
        parse_update_reply(reply, replace(rules(), output_vote=False))
    assert "make it a 'vote'" in "\n".join(P.update_rules("out", S))
    assert "vote" not in "\n".join(P.update_rules("out", S, assistants_only=True))


def test_schemas_compile_to_llama_cpp_grammars() -> None:
    llama_grammar = pytest.importorskip("llama_cpp.llama_grammar")
    for schema in (P.update_schema(list(IDS), "out", [S, G], S, "assistant", list(EDGES)), P.init_schema(4)):
        gbnf = llama_grammar.json_schema_to_gbnf(json.dumps(schema))
        assert "root ::=" in gbnf and '"\\"n1->n2\\""' in gbnf or "picks" in gbnf


def test_prompts_carry_the_feedback_and_rules() -> None:
    from ttsgraph.graph import Graph, Node

    g = Graph([Node("n1", G), Node("n2", G), Node("n3", S), Node("out", S)],
              [("n1", "n3"), ("n2", "n3"), ("n3", "out")], "out")
    rows = [{"src": u, "dst": v, "prob": 0.25} for u, v in EDGES]
    text = P.update_prompt(task="arithmetic", counts={S: 1, G: 2}, graph=g, accuracy=2 / 3, batch=3, table=rows,
                           output_id="out", output_model=S, json_reply=False)
    for needle in ("smollm2-135m: 1, gemma-3-270m: 2", "accuracy 67%", "Node n3 | model=smollm2-135m",
                   "0: src=n1, dst=n2, prob=0.250", "R1. Use exactly", "R6. Node out", "Grow the graph outward"):
        assert needle in text
    lat = P.update_prompt(task="arithmetic", counts={S: 1, G: 2}, graph=g, accuracy=0.5, batch=3, table=rows,
                          output_id="out", output_model=S, latency=4.25, latency_objective=True)
    assert "mean latency 4.25 s" in lat and "at most the required number" in lat and "Sparse graphs" in lat
    stripped = P.update_prompt(task="arithmetic", counts={S: 1, G: 2}, graph=g, accuracy=0.5, batch=3, table=rows,
                               output_id="out", output_model=S, stripped=True)
    assert "pilot" not in stripped and "R1." not in stripped and "R6." in stripped
    init = P.init_prompt("arithmetic", COMBOS, {"singles": {S: {"accuracy": 0.4}}, "mixes": [
        {"counts": {S: 3}, "accuracy": 0.5}], "items": 5})
    assert "1: smollm2-135m: 1, gemma-3-270m: 2" in init and "smollm2-135m: 40%" in init and "smollm2-135m: 3: 50%" in init
    assert "pilot" not in P.init_prompt("arithmetic", COMBOS, None, picks=1, stripped=True)


# ---- the ask → parse → retry loop --------------------------------------------------------------

def _loop(replies: list[Any], retries: int = 2, step: float = 0.3) -> tuple[Any, Any]:
    import asyncio

    from ttsgraph.llm.fake import ScriptedBackend
    from ttsgraph.search.agent import AgentClient
    from ttsgraph.search.agent_loop import ask_parsed

    def parse(text: str) -> int:
        value = extract_json(text).get("n")
        if not isinstance(value, int):
            raise AgentReplyError(f"{value!r} is not a number of nodes")
        return value

    it = iter(replies)

    def respond(model: str, messages: Any, sample: int) -> str:
        item = next(it)
        if isinstance(item, BaseException):
            raise item
        return item

    backend = ScriptedBackend(respond)
    client = AgentClient(backend, "m")
    messages = [{"role": "system", "content": P.SYSTEM}, {"role": "user", "content": "how many?"}]
    answer = asyncio.run(ask_parsed(client, messages, parse, kind="init", iteration=4, retries=retries,
                                    retry_step=step))
    return answer, backend


def test_the_loop_feeds_the_error_back_and_asks_hotter() -> None:
    answer, backend = _loop(['{"n": "x"}', '{"n": [3]}', '{"n": 3}'])
    assert (answer.value, answer.text, answer.attempts, answer.retries, answer.reason) == (3, '{"n": 3}', 3, 2, "")
    third = backend.calls[2].messages
    assert third[-2] == {"role": "assistant", "content": '{"n": [3]}'}
    assert third[-1]["content"].startswith("Your reply cannot be used: [3] is not a number of nodes")
    assert [c.params.temperature for c in backend.calls] == pytest.approx([0.1, 0.4, 0.7])


def test_the_loop_gives_up_with_the_reason_after_the_last_retry() -> None:
    answer, backend = _loop(['{"n": "a"}', '{"n": "b"}'], retries=1, step=0.0)
    assert (answer.value, answer.attempts, answer.retries) == (None, 2, 1)
    assert answer.reason == "no usable reply after 2 attempts: 'b' is not a number of nodes"
    assert [c.params.temperature for c in backend.calls] == [0.1, 0.1]


def test_a_failing_backend_ends_the_loop_at_once() -> None:
    from ttsgraph.errors import BackendError

    answer, backend = _loop(['{"n": "a"}', BackendError("connection refused", model="m"), '{"n": 3}'])
    assert (answer.value, answer.attempts, answer.retries) == (None, 2, 1)
    assert answer.reason == "agent call failed: connection refused" and len(backend.calls) == 2
