"""What each baseline optimizer does beyond the shared contract: REINFORCE learns and its
moving-average baseline cancels a constant reward, the realize step, TPE exploits, random search
covers the mixes, TextGrad's stripped prompt and 0.5 table, the hybrid's LLM rewrite and its
fallback."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import numpy as np
import pytest

from ttsgraph.errors import AgentReplyError, TtsGraphError
from ttsgraph.graph import Graph
from ttsgraph.llm.base import Message
from ttsgraph.llm.fake import ScriptedBackend
from ttsgraph.search import agent_prompts as P
from ttsgraph.search.base import Evaluation, Proposal, SearchContext, get_optimizer
from ttsgraph.search.hybrid import parse_rewrite
from ttsgraph.search.reinforce import Reinforce, flat_params, realize
from ttsgraph.testing.optimizer_contract import echo_agent, paper_space


def score(trial: int, p: Proposal, utility: float) -> Evaluation:
    space = paper_space()
    n = p.n_items
    k = round(utility * n)
    return Evaluation(trial, p.graph, k / n, utility, k, n, 0, [f"i{trial}-{j}" for j in range(n)],
                      space.units(p.graph), 0.0, 1.0)


def run(opt: Any, objective: Any, asks: int) -> list[list[Proposal]]:
    out, trial = [], 0
    for _ in range(asks):
        props = asyncio.run(opt.ask())
        evals = []
        for p in props:
            evals.append(score(trial, p, objective(p.graph)))
            trial += 1
        opt.tell(evals)
        out.append(props)
    return out


def out_degree(g: Graph) -> int:
    return g.in_degree(g.output)


def mean_out_in_degree(opt: Reinforce, n: int = 300) -> float:
    rng = np.random.default_rng(123)
    return float(np.mean([out_degree(opt.dist.sample(rng)[0]) for _ in range(n)]))


# ---- REINFORCE -------------------------------------------------------------------------------

def test_reinforce_learns_to_feed_the_output_more() -> None:
    opt = Reinforce(paper_space(), seed=1, iterations=40, batch=3, realize=False, budget_filling=True)
    opt.dist.votes = False  # this tests edge learning alone: full mixes, the output's role fixed
    before = mean_out_in_degree(opt)
    run(opt, lambda g: 1.0 if out_degree(g) >= 2 else 0.0, 25)
    after = mean_out_in_degree(opt)
    assert after > before + 0.3, (before, after)


def test_moving_average_baseline_cancels_a_constant_reward() -> None:
    space = paper_space()
    plain = Reinforce(space, seed=2, iterations=10, batch=3, realize=False)
    ma = Reinforce(space, seed=2, iterations=10, batch=3, realize=False, baseline="moving-average")
    run(plain, lambda g: 1.0, 1)
    run(ma, lambda g: 1.0, 1)
    p1, m1 = flat_params(plain.dist).copy(), flat_params(ma.dist).copy()
    assert np.allclose(p1, m1)  # first step: no baseline yet, same update
    run(plain, lambda g: 1.0, 3)
    run(ma, lambda g: 1.0, 3)
    assert not np.allclose(flat_params(plain.dist), p1)  # REINFORCE without baseline keeps drifting
    assert ma.baseline == pytest.approx(1.0)
    # with the baseline at the reward, the advantage is 0; Adam's momentum still moves a little,
    # but much less than without a baseline
    assert np.abs(flat_params(ma.dist) - m1).max() < np.abs(flat_params(plain.dist) - p1).max()


def test_reinforce_rejects_an_unknown_baseline() -> None:
    with pytest.raises(TtsGraphError, match="baseline"):
        Reinforce(paper_space(), baseline="median")


def test_realize_keeps_likely_edges_caps_out_degree_and_fits() -> None:
    space = paper_space()
    opt = Reinforce(space, seed=0, iterations=3, batch=3)
    d = opt.dist
    idx = {e: i for i, e in enumerate(d.potential)}
    params = d.params()
    params["edge_logits"][:] = -3.0
    for e in [("n1", "out"), ("n2", "n1"), ("n2", "n3"), ("n2", "out"), ("n3", "out")]:
        params["edge_logits"][idx[e]] = 3.0
    params["model_logits"][:, :] = -5.0
    params["model_logits"][:, 0] = 5.0  # everyone prefers the 1B model
    d.set_params(params)
    g = realize(d, space, np.random.default_rng(0))
    space.check(g)
    assert ("n1", "out") in g.edges and ("n2", "n1") in g.edges and ("n3", "out") in g.edges
    assert sum(1 for u, _ in g.edges if u == "n2") <= 2  # out-degree cap
    assert all(g.node(n.id).model == "llama-3.2-1b" for n in g.nodes if n.id != "out")
    assert g.pruned()[1] == []


def test_the_last_reinforce_ask_proposes_the_realized_graph_on_a_full_batch() -> None:
    opt = Reinforce(paper_space(), seed=0, iterations=3, batch=3)
    rounds = run(opt, lambda g: 0.5, 3)
    assert [len(r) for r in rounds] == [3, 3, 1]
    assert rounds[-1][0].meta == {"realized": True} and rounds[-1][0].n_items == 3


def test_realize_thresholds_are_on_the_learnt_scale() -> None:
    """`keep`=0.55 admits an edge whose logit is above logit(0.55) (≈0.2), although the sampler
    keeps it with only sigmoid(logit − 2); just below, it is left out unless needed to connect."""
    space = paper_space()
    d = Reinforce(space, seed=0, iterations=3, batch=3).dist
    idx = {e: i for i, e in enumerate(d.potential)}
    params = d.params()
    params["edge_logits"][:] = -6.0
    for e, x in [(("n1", "out"), 0.25), (("n2", "n1"), 0.25), (("n3", "n1"), 0.15)]:
        params["edge_logits"][idx[e]] = x
    d.set_params(params)
    assert d.edge_prob("n2", "n1") < 0.2  # what the sampler uses is far below `keep`
    g = realize(d, space, np.random.default_rng(0), reconnect=0.99)
    assert ("n2", "n1") in g.edges and ("n3", "n1") not in g.edges


# ---- typed options --------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["random", "tpe", "reinforce"])
@pytest.mark.parametrize("key", ["totally_bogus", "edge_pp"])
def test_a_misspelled_option_is_an_error_naming_it_and_the_valid_ones(name: str, key: str) -> None:
    cls = get_optimizer(name)
    with pytest.raises(TtsGraphError) as err:
        cls(paper_space(), seed=0, **{key: 0.9})
    message = str(err.value)
    assert "\n" not in message and f"optimizer {name!r}" in message and repr(key) in message
    assert f"(valid: {', '.join(sorted(cls.Options.model_fields))})" in message


@pytest.mark.parametrize("name, options, field", [
    ("random", {"edge_p": 1.5}, "edge_p"), ("random", {"edge_p": -0.1}, "edge_p"),
    ("tpe", {"n_startup": -1}, "n_startup"),
    ("reinforce", {"momentum": 1.0}, "momentum"), ("reinforce", {"lr": 0.0}, "lr"),
    ("reinforce", {"samples": 0}, "samples"),
])
def test_an_out_of_range_option_is_an_error_naming_it(name: str, options: dict[str, Any], field: str) -> None:
    with pytest.raises(TtsGraphError, match=f"optimizer '{name}': option '{field}'"):
        get_optimizer(name)(paper_space(), seed=0, **options)


def test_options_are_typed_with_their_documented_defaults() -> None:
    space = paper_space()
    assert get_optimizer("random")(space).opts.edge_p == 0.119
    tpe = get_optimizer("tpe")(space).opts
    assert (tpe.n_startup, tpe.multivariate) == (3, False)
    r = Reinforce(space, baseline="moving_average", samples="2").opts
    assert (r.lr, r.samples, r.baseline, r.momentum, r.realize) == (0.1, 2, "moving-average", 0.9, True)


def test_random_search_uses_its_edge_p() -> None:
    space = paper_space()
    dense = run(get_optimizer("random")(space, seed=0, edge_p=1.0), lambda g: 0.0, 6)
    sparse = run(get_optimizer("random")(space, seed=0, edge_p=0.0), lambda g: 0.0, 6)
    assert sum(len(r[0].graph.edges) for r in dense) > sum(len(r[0].graph.edges) for r in sparse)


def test_numeric_optimizers_have_no_agent_exchanges() -> None:
    for name in ("random", "tpe", "reinforce"):
        opt = get_optimizer(name)(paper_space(), seed=0)
        run(opt, lambda g: 0.5, 1)
        assert opt.drain_exchanges() == []


# ---- TPE and random ---------------------------------------------------------------------------

def test_tpe_exploits_what_scored_well() -> None:
    space = paper_space()
    opt = get_optimizer("tpe")(space, seed=0, iterations=20, batch=3, n_startup=4, budget_filling=True)

    def objective(g: Graph) -> float:  # many direct inputs to the output is good
        return min(1.0, out_degree(g) / max(1, len(g.nodes) - 1))

    rounds = run(opt, objective, 20)
    utils = [objective(r[0].graph) for r in rounds]
    assert np.mean(utils[-8:]) > np.mean(utils[:4]) + 0.1, utils


def test_random_search_draws_several_mixes() -> None:
    space = paper_space()
    opt = get_optimizer("random")(space, seed=0, iterations=12, batch=3)
    rounds = run(opt, lambda g: 0.0, 12)
    mixes = {json.dumps(r[0].meta["counts"], sort_keys=True) for r in rounds}
    assert len(mixes) >= 2
    assert all(json.loads(m) in space.combos() for m in mixes)


# ---- TextGrad ----------------------------------------------------------------------------------

def recording_agent(log: list[list[Message]]):  # type: ignore[no-untyped-def]
    def respond(model: str, messages: list[Message], sample: int) -> str:
        log.append(messages)
        return echo_agent(model, messages, sample)

    return respond


def test_textgrad_uses_a_random_mix_the_stripped_prompt_and_a_half_table() -> None:
    space = paper_space()
    calls: list[list[Message]] = []
    ctx = SearchContext(backend=ScriptedBackend(recording_agent(calls)), task="arithmetic")
    opt = get_optimizer("textgrad")(space, seed=3, iterations=4, batch=3, context=ctx, agent=space.pool.output)
    first = asyncio.run(opt.ask())
    assert calls == []  # no agent initialization
    assert first[0].meta["source"] == "random-mix"
    opt.tell([score(0, first[0], 0.5)])
    second = asyncio.run(opt.ask())
    # the echo agent's reply (the graph it was shown) is accepted even though the output model
    # (llama-3.2-3b) is not among the workers' models
    assert second[0].meta["source"] == "agent", second[0].meta
    assert len(calls) == 1
    prompt = calls[0][-1]["content"]
    assert "What pilot studies found" not in prompt
    assert "R1." not in prompt and "R4." not in prompt and "R5. The graph must stay acyclic." in prompt
    shown = json.loads(prompt.rsplit("in this form:\n", 1)[1].split("\n", 1)[0])
    assert set(shown["edge_probabilities"].values()) == {0.5}
    full = P.update_prompt(task="arithmetic", counts={"llama-3.2-1b": 1}, graph=first[0].graph, accuracy=0.5, batch=3,
                           table=[], output_id="out", output_model="llama-3.2-3b")
    assert len(prompt) < len(full) + 2000  # stripped, not the full prompt with extras


def test_textgrad_needs_a_backend_and_has_no_pretest_option() -> None:
    with pytest.raises(TtsGraphError, match="textgrad needs a backend"):
        get_optimizer("textgrad")(paper_space(), seed=0)
    with pytest.raises(TtsGraphError, match=r"textgrad.*unknown option 'pretest' \(valid: .*agent_format"):
        get_optimizer("textgrad")(paper_space(), context=SearchContext(backend=ScriptedBackend(["x"])), pretest=False)


# ---- the hybrid --------------------------------------------------------------------------------

def test_hybrid_alternates_gradient_steps_and_llm_rewrites() -> None:
    space = paper_space()
    calls: list[list[Message]] = []
    ctx = SearchContext(backend=ScriptedBackend(recording_agent(calls)), task="arithmetic")
    opt = get_optimizer("hybrid")(space, seed=0, iterations=6, batch=3, context=ctx, agent=space.pool.output)
    steps = []
    for k in range(5):
        props = asyncio.run(opt.ask())
        steps.append(props[0].meta["step"])
        if props[0].meta["step"] == "llm":
            # the echo agent set every edge into the output to 0.7 (before this ask's gradient step)
            into_out = [opt.dist.edge_prob(u, v) for u, v in opt.dist.potential if v == "out"]
            assert np.allclose(into_out, 0.7)
            assert props[0].meta["source"] == "agent-rewrite"
        opt.tell([score(k * 10 + j, p, 0.5) for j, p in enumerate(props)])
    assert steps == ["reinforce", "llm", "reinforce", "llm", "reinforce"]
    assert len(calls) == 2 and "Graphs just sampled and how they scored" in calls[0][-1]["content"]
    assert opt.rewrites == 2 and opt.agent_seconds() >= 0.0


def test_hybrid_falls_back_to_the_gradient_tables_when_the_agent_cannot_reply_usefully() -> None:
    space = paper_space()
    ctx = SearchContext(backend=ScriptedBackend(lambda m, msgs, s: '{"edge_probabilities": {"n9->out": 0.5}}'))
    opt = get_optimizer("hybrid")(space, seed=0, iterations=6, batch=3, agent_retries=1, context=ctx,
                                  agent=space.pool.output)
    props = asyncio.run(opt.ask())
    opt.tell([score(j, p, 1.0) for j, p in enumerate(props)])
    before = opt.dist.edge_table()
    props = asyncio.run(opt.ask())
    assert props[0].meta["source"] == "fallback-gradient-tables"
    assert "n9->out" in props[0].meta["fallback"] and (props[0].meta["attempts"], props[0].meta["retries"]) == (2, 1)
    assert opt.dist.edge_table() == before
    assert opt.state_dict()["fallback_count"] == 1
    log = opt.drain_exchanges()
    assert len(log) == 2 and not any(e.ok for e in log)  # both attempts rejected, with the reason
    assert all("unknown key" in (e.error or "") for e in log)


def test_hybrid_shows_and_writes_the_samplers_own_probabilities() -> None:
    """Regression (issue 10): the agent was shown sigmoid(logit) (0.5 at start) while the sampler
    keeps an edge with sigmoid(logit − 2) (0.119), so an agent's 0.9 became 0.549."""
    space = paper_space()
    shown: list[dict[str, float]] = []

    def agent(model: str, messages: list[Message], sample: int) -> str:
        text = messages[-1]["content"]
        edges = json.loads(text.split("Current edge probabilities:\n", 1)[1].split("\n", 1)[0])
        fuser = json.loads(text.split("Current fuser probabilities:\n", 1)[1].split("\n", 1)[0])
        shown.append(edges)
        return json.dumps({"edge_probabilities": {**edges, "n1->out": 0.9}, "fuser_probabilities": fuser})

    opt = get_optimizer("hybrid")(space, seed=0, iterations=8, batch=3, agent=space.pool.output,
                                  context=SearchContext(backend=ScriptedBackend(agent)))
    for k in range(4):  # utility 0 everywhere: no gradient, only the agent moves the distribution
        props = asyncio.run(opt.ask())
        opt.tell([score(10 * k + j, p, 0.0) for j, p in enumerate(props)])
    assert len(shown) == 2
    assert shown[0]["n1->out"] == pytest.approx(0.119, abs=1e-3)  # what the sampler uses at the start
    assert set(shown[0].values()) == {0.119}  # sigmoid(0 − 2), rounded to the shown digits
    assert opt.dist.edge_prob("n1", "out") == pytest.approx(0.9)  # the sampler keeps it with the agent's p
    assert shown[1]["n1->out"] == 0.9  # and the agent reads back what it wrote
    assert shown[1]["n2->out"] == pytest.approx(0.119, abs=1e-3)
    assert opt.dist.fuser_table() == pytest.approx(dict.fromkeys(opt.dist.ids, 1.0), abs=1e-5)  # π 0.5 + prior 0.5


def test_parse_rewrite_names_what_is_wrong() -> None:
    keys, slots = {"n1->out", "n2->out"}, {"n1", "n2"}
    assert parse_rewrite('x {"edge_probabilities": {"n1->out": 0.9}, "fuser_probabilities": {}} y', keys, slots) == (
        {"n1->out": 0.9}, {})
    with pytest.raises(AgentReplyError, match="n3->out"):
        parse_rewrite('{"edge_probabilities": {"n3->out": 0.9}}', keys, slots)
    with pytest.raises(AgentReplyError, match=r"outside \[0, 1\]"):
        parse_rewrite('{"fuser_probabilities": {"n1": 1.5}}', keys, slots)
    with pytest.raises(AgentReplyError, match="not a number"):
        parse_rewrite('{"edge_probabilities": {"n1->out": "high"}}', keys, slots)
    with pytest.raises(AgentReplyError, match="no JSON"):
        parse_rewrite("I would raise n1->out", keys, slots)
    with pytest.raises(AgentReplyError, match="changes no probability"):
        parse_rewrite("{}", keys, slots)
