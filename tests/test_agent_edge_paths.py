"""Agent paths the main agent tests pass by: replies in list form (nodes and table rows as JSON
lists, as some models write them) and an agent backend that fails during the initialization."""

from __future__ import annotations

import asyncio
import json

import pytest

from tests.test_agent_reinforce import local_setup
from tests.test_agent_replies import GOOD, rules
from ttsgraph.errors import AgentReplyError, BackendError
from ttsgraph.llm.fake import ScriptedBackend
from ttsgraph.search.agent_reinforce import AgentReinforce
from ttsgraph.search.agent_replies import parse_update_reply
from ttsgraph.search.base import SearchContext


def as_list(graph: dict) -> list[dict]:
    return [{"id": k, **v} for k, v in graph.items()]


def test_list_form_nodes_and_table_rows_parse_like_the_object_form() -> None:
    listed = json.dumps({"graph": as_list(GOOD),
                         "edge_probabilities": [{"src": "n1", "dst": "n2", "p": 0.7}, {"src": "n2", "dst": "out",
                                                                                        "prob": 0.9},
                                                "0: src=n1, dst=n3, prob=0.25"]})  # the paper's row
    keyed = json.dumps({"graph": GOOD, "edge_probabilities": {"n1->n2": 0.7, "n2->out": 0.9, "n1->n3": 0.25}})
    a, b = parse_update_reply(listed, rules()), parse_update_reply(keyed, rules())
    assert a.form == b.form == "json"
    assert a.graph.canonical_hash() == b.graph.canonical_hash() and a.table == b.table


@pytest.mark.parametrize(("graph", "table", "needle"), [
    ([{"model": "x"}], None, 'graph[0] must be an object with an "id"'),
    (["n1"], None, 'graph[0] must be an object with an "id"'),
    (as_list(GOOD), [{"src": "n1", "p": 0.5}], "edge_probabilities[0] must have src, dst and p"),
    (as_list(GOOD), [{"src": "n1", "dst": "zz", "p": 0.5}], "zz"),
])
def test_bad_list_forms_name_the_entry(graph: list, table: list | None, needle: str) -> None:
    with pytest.raises(AgentReplyError) as err:
        parse_update_reply(json.dumps({"graph": graph, "edge_probabilities": table}), rules())
    assert needle in str(err.value)


def test_an_agent_backend_failing_at_initialization_falls_back_to_random_picks() -> None:
    _, task, space = local_setup()

    def down(model: str, messages: list, sample: int) -> str:
        raise BackendError("connection refused", model=model)

    opt = AgentReinforce(space, seed=0, context=SearchContext(backend=ScriptedBackend(down), task=task))
    proposals = asyncio.run(opt.ask())
    assert proposals and all(p.meta["phase"] == "pretest" and not p.candidate for p in proposals)
    assert all("connection refused" in p.meta["fallback"] for p in proposals)  # each trial says why
    (exchange,) = opt.drain_exchanges()
    assert exchange.kind == "init" and not exchange.ok and "connection refused" in (exchange.error or "")
    assert exchange.meta.get("fallback") == "picked model mixes at random"
