"""Agent-REINFORCE driven end to end through the real Study with the scripted backend and recorded
agent replies: valid, malformed, cyclic, wrong ids, wrong counts, over budget, failing backend;
the pretest, the sample proposal mode, the history window, the latency variant and resume."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from typing import Any

import pytest

from ttsgraph.cost import Budget, TaskLengths
from ttsgraph.errors import BackendError
from ttsgraph.evaluator import LocalEvaluator
from ttsgraph.llm.fake import ScriptedBackend
from ttsgraph.llm.router import build_backend
from ttsgraph.models import load_pool
from ttsgraph.search import agent_prompts as P
from ttsgraph.search.agent_reinforce import AgentReinforce
from ttsgraph.search.agent_state import Phase
from ttsgraph.search.base import Evaluation, SearchContext, get_optimizer
from ttsgraph.search.space import SearchSpace, counts_of
from ttsgraph.store import RunStore
from ttsgraph.study import Study
from ttsgraph.tasks import load_task

S, G = "smollm2-135m", "gemma-3-270m"
Reply = str | Callable[[dict[str, Any]], str] | BaseException


def answer_of(question: str) -> int:
    expr = re.search(r"What is ([-+*\d ]+)\?", question).group(1)  # type: ignore[union-attr]
    return int(eval(expr))  # test-only: our own digits and + -


def last_form(messages: list[dict[str, str]]) -> dict[str, Any]:
    """The last graph and table in JSON form, as the newest update prompt shows them."""
    for m in reversed(messages):
        if m["role"] == "user" and "in this form:\n" in m["content"]:
            return json.loads(m["content"].rsplit("in this form:\n", 1)[1])
    raise AssertionError("no update prompt in the messages")


def chain_reply(form: dict[str, Any], p: float = 0.8) -> str:
    """Keep every node's model and role, rewire as a chain n1 -> n2 -> ... -> out (all assistants)."""
    graph = form["graph"]
    ids = [i for i in graph if i != "out"]
    new = {i: {"model": graph[i]["model"], "role": "assistant", "preds": [ids[k - 1]] if k else []}
           for k, i in enumerate(ids)}
    new["out"] = {**graph["out"], "preds": [ids[-1]]}
    table = {e: (p if e in {f"{a}->{b}" for a, b in zip(ids, ids[1:] + ["out"])} else 0.1)
             for e in form["edge_probabilities"]}
    return json.dumps({"graph": new, "edge_probabilities": table})


def fan_in_reply(form: dict[str, Any]) -> str:
    """Every worker feeds the output directly (parallel + synthesis)."""
    graph = form["graph"]
    new = {i: {"model": v["model"], "role": "assistant", "preds": []} for i, v in graph.items() if i != "out"}
    new["out"] = {**graph["out"], "preds": [i for i in graph if i != "out"]}
    return json.dumps({"graph": new, "edge_probabilities": {e: 0.5 for e in form["edge_probabilities"]}})


def cyclic_reply(form: dict[str, Any]) -> str:
    graph = json.loads(chain_reply(form))
    ids = [i for i in graph["graph"] if i != "out"]
    graph["graph"][ids[0]]["preds"] = [ids[-1]]
    return json.dumps(graph)


class Agent:
    """A recorded agent: `script` replies in call order (strings, functions of the last graph form,
    or exceptions to raise); after it runs out, `then` answers every call. Workers answer: gemma
    is right, smollm right when it synthesizes others' answers."""

    def __init__(self, script: list[Reply], then: Reply | None = None, init: str = '{"picks": [1, 3]}') -> None:
        self.script = [init, *script]
        self.then = then if then is not None else chain_reply
        self.calls: list[list[dict[str, str]]] = []

    def __call__(self, model: str, messages: list[dict[str, str]], sample: int) -> str:
        if messages[0]["content"] != P.SYSTEM:
            q = messages[-1]["content"]
            right = model == G or "Answers from other models" in q
            return f"Answer: {answer_of(q) + (0 if right else 1)}"
        self.calls.append(messages)
        item = self.script.pop(0) if self.script else self.then
        if isinstance(item, BaseException):
            raise item
        return item(last_form(messages)) if callable(item) else item


def stateless(model: str, messages: list[dict[str, str]], sample: int) -> str:
    """An agent whose reply depends only on the prompt (so a resumed run re-asks identically):
    alternates chain and fan-in, answering a chain with a cyclic graph first to exercise the retries."""
    if messages[0]["content"] != P.SYSTEM:
        q = messages[-1]["content"]
        right = model == G or "Answers from other models" in q
        return f"Answer: {answer_of(q) + (0 if right else 1)}"
    user = messages[-1]["content"]
    if "Options (index" in user:
        return '{"picks": [1, 3]}'
    form = last_form(messages)
    if "Your reply cannot be used" in user:
        return fan_in_reply(form)
    if len(form["graph"]["out"]["preds"]) == 1:
        return cyclic_reply(form)  # rejected, then retried with the error
    return chain_reply(form)


def local_setup(budget_nodes: int = 3) -> tuple[Any, Any, SearchSpace]:
    pool = load_pool("local")
    task = load_task("arithmetic", size=12)
    return pool, task, SearchSpace(pool, task.lengths, Budget.from_nodes(budget_nodes, pool, task.lengths))


def run_study(tmp_path: Any, responder: Callable[..., str], *, iterations: int = 6, batch: int = 2,
              setup: tuple[Any, Any, SearchSpace] | None = None, name: str = "run", resume: bool = False,
              **options: Any) -> tuple[Any, RunStore, AgentReinforce]:
    pool, task, space = setup or local_setup()
    backend = build_backend(pool, None, fake=ScriptedBackend(responder))
    options = {"pretest_variants": 2, "agent": pool.output, **options}
    opt = AgentReinforce(space, seed=0, iterations=iterations, batch=batch,
                         context=SearchContext(backend=backend, task=task), **options)
    store = RunStore.open(tmp_path / name) if resume else RunStore.create(tmp_path / name)
    study = Study(store, task, pool, space, opt, LocalEvaluator(backend, pool, task), iterations=iterations,
                  batch=batch, test_limit=0)
    try:
        result = asyncio.run(study.run())
    except BaseException:
        store.close()  # as a killed process would release its lock
        raise
    return result, store, opt


def updates(store: RunStore) -> list[Any]:
    return [t for t in store.trials("search") if t.meta.get("phase") == "update"]


# ------------------------------------------------------------------------------------------------

def test_registered_under_its_name() -> None:
    assert get_optimizer("agent-reinforce") is AgentReinforce


def test_whole_loop_with_valid_replies(tmp_path: Any) -> None:
    agent = Agent([])
    result, store, opt = run_study(tmp_path, agent)
    trials = store.trials("search")
    phases = [t.meta["phase"] for t in trials]
    # picks 1 and 3 ({1 smol, 2 gemma}, {3 smol}) with two variants each -> 4 pretest graphs of 1 item
    assert phases == ["pretest"] * 4 + ["initial"] + ["update"] * 3
    assert [len(t.item_ids) for t in trials] == [1, 1, 1, 1, 2, 2, 2, 2]
    assert [t.meta["counts"] for t in trials[:4]] == [{S: 1, G: 2}, {S: 0, G: 2}, {S: 3, G: 0}, {S: 2, G: 0}]
    assert result.evaluations == 12  # the pretest is counted in the evaluation budget
    for t in updates(store):  # the agent's chain, taken as written
        ids = [n.id for n in t.graph.nodes if n.id != "out"]
        assert set(t.graph.edges) == set(zip(ids, ids[1:] + ["out"]))
        assert t.meta["source"] == "agent" and t.meta["attempts"] == 1
    # the initial graph runs only the workers the sparse draw connected; the agent sees (and wires) them all
    required = {m: k for m, k in opt.state.counts.items() if k}
    assert {m: k for m, k in trials[4].meta["counts"].items() if k} == counts_of(trials[5].graph) == required
    # the second update prompt shows the table the first reply wrote
    second = last_form(agent.calls[2])
    assert set(second["edge_probabilities"].values()) == {0.8, 0.1}
    log = store.agent_log()
    assert [e["kind"] for e in log] == ["init", "update", "update", "update"] and all(e["ok"] for e in log)
    assert log[0]["iteration"] == 0 and [e["iteration"] for e in log[1:]] == [2, 3, 4]
    assert log[1]["prompt"][0] == {"role": "system", "content": P.SYSTEM}
    assert result.agent_seconds >= 0


def test_agent_calls_carry_the_json_schema_for_weak_agents(tmp_path: Any) -> None:
    pool, task, space = local_setup()
    backend = ScriptedBackend(Agent([]))
    opt = AgentReinforce(space, context=SearchContext(backend=backend, task=task), pretest=False)
    assert opt.agent_model == S  # the largest chat model of the local pool (gemma is a base model)
    asyncio.run(opt.ask())
    schema = json.loads(backend.calls[0].params.json_schema)
    assert schema["properties"]["picks"]["minItems"] == 2


def test_malformed_reply_is_retried_with_the_error_fed_back(tmp_path: Any) -> None:
    agent = Agent(["I would keep the graph.", chain_reply])
    _, store, opt = run_study(tmp_path, agent)
    first = updates(store)[0]
    assert first.meta["attempts"] == 2 and first.meta["retries"] == 1 and first.meta["source"] == "agent"
    retry = agent.calls[2]
    assert retry[-2] == {"role": "assistant", "content": "I would keep the graph."}
    assert retry[-1]["content"].startswith("Your reply cannot be used: the reply has neither a JSON object")
    log = store.agent_log()
    assert (log[1]["kind"], log[1]["ok"]) == ("update", False) and "neither" in log[1]["error"]
    assert (log[2]["kind"], log[2]["ok"]) == ("update-retry", True)
    assert opt.state.retry_count == 1


def test_cyclic_replies_exhaust_the_retries_and_fall_back_to_sampling(tmp_path: Any) -> None:
    agent = Agent([cyclic_reply] * 4)
    result, store, opt = run_study(tmp_path, agent)
    first = updates(store)[0]
    assert first.meta["source"] == "fallback-sample" and "cycle" in first.meta["fallback"]
    assert first.meta["attempts"] == 4 and first.meta["retries"] == 3
    assert "after 4 attempts" in first.meta["fallback"]
    first.graph.validate()
    assert opt.state.fallback_count == 1
    rejected = [e for e in store.agent_log() if not e["ok"]]
    assert len(rejected) == 4 and all("cycle" in e["error"] for e in rejected)
    assert rejected[-1]["meta"]["fallback"].startswith("sampled")
    assert [t.meta["source"] for t in updates(store)[1:]] == ["agent", "agent"]  # the study went on
    assert result.trials == 8


def test_wrong_node_ids_and_counts_are_fed_back(tmp_path: Any) -> None:
    def renamed(form: dict[str, Any]) -> str:
        data = json.loads(chain_reply(form))
        data["graph"]["worker1"] = data["graph"].pop("n1")
        return json.dumps(data)

    def recounted(form: dict[str, Any]) -> str:
        data = json.loads(chain_reply(form))
        data["graph"]["n1"]["model"] = G if data["graph"]["n1"]["model"] == S else S
        return json.dumps(data)

    agent = Agent([renamed, recounted, chain_reply])
    _, store, _ = run_study(tmp_path, agent, pretest=False)  # first pick: 1 smollm + 2 gemma
    assert "unknown node id 'worker1'" in agent.calls[2][-1]["content"]
    assert "R1: the model counts must be exactly" in agent.calls[3][-1]["content"]
    assert updates(store)[0].meta["attempts"] == 3


def test_agent_backend_failure_falls_back_with_the_reason(tmp_path: Any) -> None:
    agent = Agent([BackendError("connection refused", model=S)])
    _, store, opt = run_study(tmp_path, agent)
    first = updates(store)[0]
    assert first.meta["source"] == "fallback-sample" and "connection refused" in first.meta["fallback"]
    assert any(not e["ok"] and "connection refused" in (e["error"] or "") for e in store.agent_log())


def test_init_falls_back_to_random_picks_when_the_agent_cannot_pick(tmp_path: Any) -> None:
    pool, task, space = local_setup()
    opt = AgentReinforce(space, context=SearchContext(backend=ScriptedBackend(["no idea"]), task=task),
                         agent_retries=1)
    proposals = asyncio.run(opt.ask())
    assert proposals and all(p.meta["phase"] == "pretest" and not p.candidate for p in proposals)
    assert all("after 2 attempts" in p.meta["fallback"] for p in proposals)  # each trial says why
    opt.tell([_eval(p, 0.5, space) for p in proposals])
    assert opt.state.fallback_count == 1 and opt.state.retry_count == 1
    assert all(p in space.combos() for p in opt.state.picked)


def paper_setup(units: float) -> tuple[Any, Any, SearchSpace]:
    pool = load_pool("paper")
    task = load_task("arithmetic", size=12)
    task.lengths = TaskLengths(202, 275)  # MATH's lengths: in-degree is expensive
    return pool, task, SearchSpace(pool, task.lengths, Budget(units, nodes=4))


def test_over_budget_reply_is_repaired_and_the_agent_told(tmp_path: Any) -> None:
    def dense(form: dict[str, Any]) -> str:
        graph = form["graph"]
        ids = [i for i in graph if i != "out"]
        new = {i: {"model": graph[i]["model"], "role": "assistant", "preds": ids[:k]} for k, i in enumerate(ids)}
        new["out"] = {**graph["out"], "preds": ids}
        return json.dumps({"graph": new, "edge_probabilities": {e: 0.9 for e in form["edge_probabilities"]}})

    setup = paper_setup(12.0)
    agent = Agent([dense], init='{"picks": [1, 0]}')  # first pick: four 1B workers
    _, store, opt = run_study(tmp_path, agent, setup=setup, pretest=False, agent="llama-3.2-3b", iterations=4)
    initial, first = store.trials("search")[0], updates(store)[0]
    space = setup[2]
    assert first.meta["repaired"] and space.fits(first.graph)
    assert sum(first.meta["counts"].values()) == sum(initial.meta["counts"].values()) - len(first.meta["repaired"])
    note = agent.calls[2][-1]["content"]
    assert "exceeded the compute budget" in note
    assert f"llama-3.2-1b: {first.meta['counts']['llama-3.2-1b']}" in note
    before = set(last_form(agent.calls[1])["graph"])  # the ids the first update spoke of
    assert set(last_form(agent.calls[2])["graph"]) == before - set(first.meta["repaired"])  # the others keep theirs


def test_sample_mode_draws_from_the_agent_table_with_its_placement(tmp_path: Any) -> None:
    def sure_chain(form: dict[str, Any]) -> str:
        data = json.loads(chain_reply(form, p=1.0))
        data["edge_probabilities"] = {k: (1.0 if v == 1.0 else 0.0) for k, v in data["edge_probabilities"].items()}
        return json.dumps(data)

    agent = Agent([], then=sure_chain)
    _, store, _ = run_study(tmp_path, agent, proposal="sample")
    for t in updates(store):
        assert t.meta["source"] == "sampled-from-agent-table"
        ids = [n.id for n in t.graph.nodes if n.id != "out"]
        assert set(t.graph.edges) == set(zip(ids, ids[1:] + ["out"]))


def vote_reply(form: dict[str, Any]) -> str:
    """Every worker answers on its own and the output takes their majority (self-consistency)."""
    graph = form["graph"]
    new = {i: {"model": v["model"], "role": "assistant", "preds": []} for i, v in graph.items() if i != "out"}
    new["out"] = {"model": graph["out"]["model"] or S, "role": "vote", "preds": [i for i in graph if i != "out"]}
    return json.dumps({"graph": new, "edge_probabilities": {e: (1.0 if e.endswith("->out") else 0.0)
                                                             for e in form["edge_probabilities"]}})


@pytest.mark.parametrize("proposal", ["agent", "sample"])
def test_the_agent_can_make_the_output_a_vote(tmp_path: Any, proposal: str) -> None:
    """The update prompt and schema offer the vote (R2, R6); a reply that takes it is scored as a
    vote output (no model call, cheaper than planned), and the next round's rules still name the
    output model the node would call if it answered again."""
    agent = Agent([], then=vote_reply)
    _, store, _ = run_study(tmp_path, agent, proposal=proposal)
    ups = updates(store)
    assert ups and all(t.graph.node(t.graph.output).role == "vote" for t in ups)
    assert all(t.graph.node(t.graph.output).model is None for t in ups)
    first = next(m for m in agent.calls[1] if m["role"] == "user")["content"]
    assert "make it a 'vote'" in first and "may instead be a 'vote'" in first
    later = agent.calls[-1][-1]["content"]  # an update about a graph whose output voted
    assert f"keep its model ({S})" in later and "Node out | role=vote" in later


def _eval(p: Any, utility: float, space: SearchSpace, latency: float = 1.0) -> Evaluation:
    return Evaluation(trial=0, graph=p.graph, accuracy=utility, utility=utility, correct=0, scored=p.n_items,
                      errors=0, item_ids=[f"i{k}" for k in range(p.n_items)], planned_units=space.units(p.graph),
                      measured_units=0.0, latency=latency)


def test_pretest_keeps_the_best_variant_and_scores_each_on_one_item() -> None:
    pool, task, space = local_setup(4)
    opt = AgentReinforce(space, context=SearchContext(backend=ScriptedBackend(Agent([])), task=task), batch=3)
    proposals = asyncio.run(opt.ask())
    variants = [p.meta["counts"] for p in proposals]
    # pick 1 = {1 smol, 3 gemma}: drop smollm first, then gemma; pick 3 = {3 smol, 1 gemma}
    assert variants == [{S: 1, G: 3}, {S: 0, G: 3}, {S: 0, G: 2}, {S: 0, G: 1},
                        {S: 3, G: 1}, {S: 2, G: 1}, {S: 1, G: 1}]
    assert all(p.n_items == 1 and all(n.role == "assistant" for n in p.graph.nodes) for p in proposals)
    assert all(p.candidate is False and "candidate" not in p.meta for p in proposals)  # screening probes
    scores = [0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0]
    opt.tell([_eval(p, s, space) for p, s in zip(proposals, scores)])
    (initial,) = asyncio.run(opt.ask())
    assert initial.meta["phase"] == "initial" and initial.n_items == 3
    assert counts_of(initial.graph) == {G: 2}


def test_state_round_trip_resumes_identically_even_between_ask_and_tell() -> None:
    def drive(opt: AgentReinforce, asks: int, space: SearchSpace) -> list[tuple[str, int, str]]:
        out = []
        for k in range(asks):
            proposals = asyncio.run(opt.ask())
            out.append([(p.graph.canonical_hash(), p.n_items, str(p.meta.get("source"))) for p in proposals])
            opt.tell([_eval(p, (k % 3) / 2, space) for p in proposals])
        return out

    pool, task, space = local_setup()
    make = lambda: AgentReinforce(space, seed=3, context=SearchContext(backend=ScriptedBackend(stateless),  # noqa: E731
                                                                       task=task))
    a = make()
    drive(a, 3, space)
    state = json.loads(json.dumps(a.state_dict()))
    b = make()
    b.load_state_dict(state)
    assert drive(a, 4, space) == drive(b, 4, space)
    # a state taken while an ask is pending re-asks that ask
    c, d = make(), make()
    drive(c, 2, space)
    pending = asyncio.run(c.ask())
    d.load_state_dict(json.loads(json.dumps(c.state_dict())))
    again = asyncio.run(d.ask())
    assert [p.graph.canonical_hash() for p in again] == [p.graph.canonical_hash() for p in pending]


class Crash(BaseException):  # a kill, not a backend fault (those become item errors)
    pass


def test_a_crashed_study_resumes_to_the_uninterrupted_trials(tmp_path: Any) -> None:
    full, full_store, full_opt = run_study(tmp_path, stateless, name="full", iterations=8)
    calls = {"n": 0}

    def crashing(model: str, messages: list[dict[str, str]], sample: int) -> str:
        if messages[0]["content"] != P.SYSTEM:
            calls["n"] += 1
            if calls["n"] == 35:  # mid-updates: the last stored iteration made agent calls
                raise Crash("kill -9")
        return stateless(model, messages, sample)

    with pytest.raises(Crash):
        run_study(tmp_path, crashing, name="crashed", iterations=8)
    partial = RunStore.open(tmp_path / "crashed", readonly=True).trials("search")
    assert 0 < len(partial) < len(full_store.trials("search"))
    resumed, store, opt = run_study(tmp_path, stateless, name="crashed", iterations=8, resume=True)

    def sig(s: RunStore) -> list[tuple[Any, ...]]:
        return [(t.graph_hash, tuple(t.item_ids), t.correct, t.meta.get("phase"), t.meta.get("source"),
                 t.meta.get("attempts")) for t in s.trials("search")]

    assert sig(store) == sig(full_store)

    def log_sig(s: RunStore) -> list[tuple[Any, ...]]:
        return [(e["kind"], e["iteration"], e["meta"].get("attempt"), e["ok"]) for e in s.agent_log()]

    # every exchange stored once (regression: the resumed state handed the last stored ones out again)
    assert log_sig(store) == log_sig(full_store)
    assert resumed.best.graph.canonical_hash() == full.best.graph.canonical_hash()
    same = lambda st: {k: v for k, v in st.to_dict().items() if k != "last"}  # noqa: E731 (last: measured latency)
    assert same(opt.state) == same(full_opt.state)
    assert full_opt.state.retry_count > 0  # the run did exercise retries


def test_history_holds_the_last_two_exchanges_and_is_dropped_beyond_five_models() -> None:
    pool, task, space = local_setup()
    agent = Agent([])
    opt = AgentReinforce(space, context=SearchContext(backend=ScriptedBackend(agent), task=task), pretest=False,
                         agent_context=0)
    for _ in range(5):
        proposals = asyncio.run(opt.ask())
        opt.tell([_eval(p, 0.5, space) for p in proposals])
    roles = [[m["role"] for m in call] for call in agent.calls[1:]]
    assert roles[0] == ["system", "user"]
    assert roles[1] == ["system", "user", "assistant", "user"]
    assert roles[2] == roles[3] == ["system"] + ["user", "assistant"] * 2 + ["user"]

    pool, task, big = local_setup(6)
    agent = Agent([], init='{"picks": [6, 5]}')  # six smollm workers
    opt = AgentReinforce(big, context=SearchContext(backend=ScriptedBackend(agent), task=task), pretest=False,
                         agent_context=0)
    for _ in range(4):
        proposals = asyncio.run(opt.ask())
        opt.tell([_eval(p, 0.5, big) for p in proposals])
    assert sum(opt.state.counts.values()) == 6
    assert all(len(call) == 2 for call in agent.calls[1:])


def test_small_context_trims_history_and_reply_budget() -> None:
    pool, task, space = local_setup()
    backend = ScriptedBackend(Agent([]))
    opt = AgentReinforce(space, context=SearchContext(backend=backend, task=task), pretest=False, agent_context=1800)
    for _ in range(4):
        proposals = asyncio.run(opt.ask())
        opt.tell([_eval(p, 0.5, space) for p in proposals])
    for call in backend.calls[1:]:
        prompt_tokens = sum(len(m["content"]) for m in call.messages) / 3.5
        assert prompt_tokens + call.params.max_tokens <= 1800


def test_latency_objective_uses_the_latency_prompts_and_accepts_unused_nodes() -> None:
    def drop_one(form: dict[str, Any]) -> str:
        data = json.loads(fan_in_reply(form))
        first = next(i for i in data["graph"] if i != "out")
        data["graph"]["out"]["preds"].remove(first)
        return json.dumps(data)

    pool, task, space = local_setup()
    agent = Agent([drop_one])
    opt = AgentReinforce(space, context=SearchContext(backend=ScriptedBackend(agent), task=task,
                                                      objective="accuracy-latency"), pretest=False)
    (p0,) = asyncio.run(opt.ask())
    opt.tell([_eval(p0, 0.5, space, latency=3.5)])
    (p1,) = asyncio.run(opt.ask())
    assert "efficiency" in agent.calls[0][-1]["content"]
    update = agent.calls[1][-1]["content"]
    assert "mean latency 3.50 s" in update and "at most the required number" in update
    assert p1.meta["source"] == "agent"
    assert len(p1.graph.nodes) == sum(p1.meta["counts"].values())  # every worker but the unused one, + out


def test_text_form_agents_get_the_block_instructions_and_no_schema() -> None:
    def text_reply(model: str, messages: list[dict[str, str]], sample: int) -> str:
        user = messages[-1]["content"]
        if "Options (index" in user:
            return '{"smollm2-135m": 1, "gemma-3-270m": 2}\n{"smollm2-135m": 3, "gemma-3-270m": 0}'
        ids = re.findall(r"^Node (\S+) \| model=(\S+)", user, re.M)
        workers = [(i, m) for i, m in ids if i != "out"]
        lines = [f"Node {i} | model={m} | role=IO | preds=[] | succs=[out]" for i, m in workers]
        lines.append(f"Node out | model={S} | role=IO | preds=[{', '.join(i for i, _ in workers)}] | succs=[]")
        table = [f"{k}: src={i}, dst=out, prob=0.700" for k, (i, _) in enumerate(workers)]
        return "Let me think.\nGraph:\n" + "\n".join(lines) + "\nEdge-probabilities:\n" + "\n".join(table)

    pool, task, space = local_setup()
    backend = ScriptedBackend(text_reply)
    opt = AgentReinforce(space, context=SearchContext(backend=backend, task=task), pretest=False, agent_format="text")
    (p0,) = asyncio.run(opt.ask())
    opt.tell([_eval(p0, 0.5, space)])
    (p1,) = asyncio.run(opt.ask())
    assert all(c.params.json_schema is None for c in backend.calls)
    assert "Edge-probabilities:" in backend.calls[1].messages[-1]["content"]
    assert p1.meta["reply_form"] == "text" and p1.meta["source"] == "agent"
    assert set(p1.graph.preds("out")) == {n.id for n in p1.graph.nodes if n.id != "out"}
    opt.tell([_eval(p1, 0.5, space)])
    assert {v for k, v in opt.state.table.items() if k.endswith("->out")} == {0.7}


def test_the_callers_profile_reaches_the_initialization_prompt(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from ttsgraph.profile import Profile, profile_path, save_profile

    monkeypatch.setenv("TTSGRAPH_HOME", str(tmp_path))
    pool, task, space = local_setup()
    prof = Profile(task="arithmetic", task_config=task.config_id, pool="local", models=list(pool.models), items=4,
                   source="measured", singles={S: {"accuracy": 0.25}, G: {"accuracy": 0.75}},
                   mixes=[{"counts": {G: 3}, "accuracy": 1.0}], created="2026-01-01T00:00:00Z", key="k")
    backend = ScriptedBackend(Agent([]))
    asyncio.run(AgentReinforce(space, context=SearchContext(backend=backend, task=task, profile=prof)).ask())
    init = backend.calls[0].messages[-1]["content"]
    assert "gemma-3-270m: 75%" in init and "gemma-3-270m: 3: 100%" in init
    # the optimizer never looks for files: a stored profile is not used unless the caller passes it
    save_profile(prof, profile_path(task, pool, "k"))
    backend = ScriptedBackend(Agent([]))
    opt = AgentReinforce(space, context=SearchContext(backend=backend, task=task))
    asyncio.run(opt.ask())
    assert P.profile_text(None) in backend.calls[0].messages[-1]["content"]
    assert "profile" not in opt.state_dict()


def test_bad_options_are_typed_errors_naming_the_option() -> None:
    from ttsgraph.errors import TtsGraphError

    pool, task, space = local_setup()
    with pytest.raises(TtsGraphError, match="agent-reinforce needs a backend"):
        AgentReinforce(space, context=SearchContext(task=task))
    ctx = SearchContext(backend=ScriptedBackend(["x"]), task=task)
    with pytest.raises(TtsGraphError, match=r"unknown option 'agent_retires' \(valid: .*agent_retries.*pretest_variants"):
        AgentReinforce(space, context=ctx, agent_retires=2)
    with pytest.raises(TtsGraphError, match="unknown option 'backend'"):  # runtime objects come in the context
        AgentReinforce(space, context=ctx, backend=ScriptedBackend(["x"]))
    for bad, name in (({"proposal": "guess"}, "proposal"), ({"agent_format": "yaml"}, "agent_format"),
                      ({"agent_retries": -1}, "agent_retries"), ({"edge_p": 1.5}, "edge_p"),
                      ({"agent": "gpt-9"}, "gpt-9")):
        with pytest.raises(TtsGraphError, match=name):
            AgentReinforce(space, context=ctx, **bad)
    with pytest.raises(TtsGraphError, match="objective 'speed'"):
        AgentReinforce(space, context=SearchContext(backend=ScriptedBackend(["x"]), objective="speed"))


def test_the_state_does_not_grow_with_the_rounds() -> None:
    """Fallbacks are counted, not listed, and the history keeps `history` turns: the store saves
    one state per iteration, so per-round growth would make it grow quadratically."""
    pool, task, space = local_setup()
    opt = AgentReinforce(space, context=SearchContext(backend=ScriptedBackend(Agent([], then=cyclic_reply)), task=task),
                         pretest=False, agent_retries=0, agent_context=0)
    sizes = []
    for _ in range(12):
        proposals = asyncio.run(opt.ask())
        opt.tell([_eval(p, 0.5, space) for p in proposals])
        opt.drain_exchanges()
        state = opt.state_dict()
        sizes.append(len(json.dumps(state)))
    assert opt.state.fallback_count == 11 and opt.state.phase is Phase.UPDATE
    assert json.loads(json.dumps(opt.state_dict()))["phase"] == "update"
    assert max(sizes[4:]) - min(sizes[4:]) < 200, sizes


def test_node_ids_in_the_history_name_the_same_nodes_in_the_current_graph(tmp_path: Any) -> None:
    """A reply that reverses the chain changes the topological order; the ids must not follow it,
    or the history (the agent's own earlier reply) would speak of other nodes than the graph shown."""
    def reversed_chain(form: dict[str, Any]) -> str:
        graph = form["graph"]
        ids = [i for i in graph if i != "out"][::-1]
        new = {i: {"model": graph[i]["model"], "role": "assistant", "preds": [ids[k - 1]] if k else []}
               for k, i in enumerate(ids)}
        new["out"] = {**graph["out"], "preds": [ids[-1]]}
        return json.dumps({"graph": new, "edge_probabilities": {e: 0.5 for e in form["edge_probabilities"]}})

    agent = Agent([chain_reply, reversed_chain, chain_reply])
    run_study(tmp_path, agent, pretest=False, history=2, agent_context=0)
    messages = agent.calls[3]  # the third update: its history holds the two earlier exchanges
    history_reply = json.loads([m for m in messages if m["role"] == "assistant"][-1]["content"])["graph"]
    shown = last_form(messages)["graph"]
    assert [i for i in history_reply if i != "out"] != sorted(i for i in history_reply if i != "out")  # order changed
    for node_id, spec in history_reply.items():  # same model and same predecessors under the same id
        assert shown[node_id]["model"] == spec["model"]
        assert sorted(shown[node_id]["preds"]) == sorted(spec["preds"])


def test_retries_are_asked_hotter_so_a_seeded_agent_does_not_repeat_itself(tmp_path: Any) -> None:
    pool, task, space = local_setup()
    backend = ScriptedBackend(Agent([cyclic_reply] * 4))
    opt = AgentReinforce(space, context=SearchContext(backend=backend, task=task), pretest=False)
    (p0,) = asyncio.run(opt.ask())
    opt.tell([_eval(p0, 0.5, space)])
    asyncio.run(opt.ask())
    temps = [c.params.temperature for c in backend.calls[1:]]
    assert temps == pytest.approx([0.1, 0.4, 0.7, 1.0])
