"""Agent-REINFORCE and its baselines as the paper ran them (issue 16): the paper's unit costs, the
GPTSwarm initial graphs, the update prompt's content, TextGrad held only to the rules it is told,
per-method pools, the output node's own token cap and the paper's budget labels."""

from __future__ import annotations

import asyncio
import json
import warnings
from typing import Any

import numpy as np
import pytest

from ttsgraph.config import make_config
from ttsgraph.cost import (
    PAPER_LENGTHS,
    Budget,
    meant_node_budget,
    reference_bound_units,
    units_budget,
)
from ttsgraph.graph import Graph, Node
from ttsgraph.llm.base import SamplingParams
from ttsgraph.llm.fake import ScriptedBackend
from ttsgraph.models import load_pool
from ttsgraph.profile import Profile
from ttsgraph.runtime import build_runtime
from ttsgraph.search import agent_prompts as P
from ttsgraph.search.agent_init import pretest_proposals, swarm_draw
from ttsgraph.search.agent_reinforce import AgentReinforce
from ttsgraph.search.agent_replies import parse_update_reply
from ttsgraph.search.agent_update import rules_for
from ttsgraph.search.base import Evaluation, SearchContext
from ttsgraph.search.space import SearchSpace
from ttsgraph.search.textgrad import TextGrad
from ttsgraph.search.unit_costs import paper_unit_costs
from ttsgraph.tasks import load_task

MATH = PAPER_LENGTHS["math"]
L1, L3, L8, L70 = "llama-3.2-1b", "llama-3.2-3b", "llama-3.1-8b", "llama-3.1-70b"
S, G = "smollm2-135m", "gemma-3-270m"


def paper_space(b: int = 12, task: str = "math500") -> SearchSpace:
    pool = load_pool("paper")
    return SearchSpace(pool, MATH, Budget.from_nodes(b, pool, MATH), unit_costs=paper_unit_costs(pool.models, task))


def counts(n1: int = 0, n3: int = 0, n8: int = 0, n70: int = 0) -> dict[str, int]:
    return {L1: n1, L3: n3, L8: n8, L70: n70}


# ----- 1. unit costs --------------------------------------------------------------------------

def test_paper_pool_offers_the_seven_combos_spec_lists_for_b12() -> None:
    assert paper_space().unit_costs() == {L1: 1, L3: 3, L8: 9, L70: 81}
    assert paper_space().combos(budget_filling=True) == [counts(0, 1, 1), counts(3, 0, 1), counts(0, 4), counts(3, 3), counts(6, 2),
                                      counts(9, 1), counts(12)]


def test_humaneval_and_other_pools_and_tasks() -> None:
    paper = load_pool("paper")
    assert paper_unit_costs(paper.models, "humaneval") == {L1: 1, L3: 4, L8: 7, L70: 63}
    humaneval = paper_space(12, "humaneval")  # MATH's lengths: only the costs matter for the mixes
    assert humaneval.combos(budget_filling=True) == [counts(1, 1, 1), counts(5, 0, 1), counts(0, 3), counts(4, 2), counts(8, 1),
                                  counts(12)]
    assert paper_unit_costs(paper.models, "mmlu:anatomy") == {L1: 1, L3: 3, L8: 9, L70: 81}
    assert paper_unit_costs(load_pool("paper-full").models, "math500")["gemma-7b"] == 9
    assert paper_unit_costs(paper.models, "arithmetic") is None  # not one of the paper's tasks
    assert paper_unit_costs(load_pool("local").models, "math500") is None  # not the paper's models
    derived = SearchSpace(paper, MATH, Budget.from_nodes(12, paper, MATH))
    assert derived.unit_costs()[L8] == 8  # the FLOPs formula's rounding, kept for other pools


def test_the_runtime_gives_the_paper_pool_the_paper_table() -> None:
    async def costs(task: str) -> dict[str, int]:
        config = make_config({"task": task, "models": "paper", "budget": {"nodes": 12}})
        async with build_runtime(config, fake_backend=ScriptedBackend(["x"])) as rt:
            return rt.space().unit_costs()

    assert asyncio.run(costs("math500"))[L8] == 9
    assert asyncio.run(costs("arithmetic"))[L8] == 8


# ----- 2. the GPTSwarm initial and pretest graphs -----------------------------------------------

def test_initial_graphs_come_from_the_gptswarm_sampler() -> None:
    space = paper_space()
    rng = np.random.default_rng(0)
    workers, units = [], []
    for _ in range(600):
        g = space.repair(swarm_draw(space, counts(12), rng, 0.119))[0]
        workers.append(len(g.nodes) - 1)
        units.append(space.units(g))
    # SPEC §3.2 at p = 0.119 reaches about 5.2 of 12 workers (14.3 units); wiring every worker in gave 12 and 28
    assert 4.6 < np.mean(workers) < 5.9 and 12.8 < np.mean(units) < 15.8


def test_agent_reinforce_initial_graph_runs_the_draw_and_shows_every_node() -> None:
    space = paper_space()
    opt = AgentReinforce(space, context=SearchContext(backend=ScriptedBackend(["x"]), task=load_task("math500")),
                         agent=L8, pretest=False)
    sizes = []
    for _ in range(30):
        (p,) = opt._ask_initial(counts(12))
        assert opt._pending is not None and len(opt._pending.view.nodes) == 13  # the agent sees all 12 workers
        sizes.append(len(p.graph.nodes) - 1)
    assert np.mean(sizes) < 8


def test_pretest_graphs_are_sparse_draws_with_assistants_only() -> None:
    space = paper_space()
    props = pretest_proposals(space, [counts(12), counts(3, 3)], np.random.default_rng(1))
    for p in props:
        assert {n.role for n in p.graph.nodes} == {"assistant"} and space.fits(p.graph) and p.n_items == 1
        assert p.graph.preds("out")


# ----- 4. the update prompt's content -------------------------------------------------------------

def _evaluation(graph: Graph, space: SearchSpace) -> Evaluation:
    return Evaluation(trial=0, graph=graph, accuracy=0.5, utility=0.5, correct=1, scored=2, errors=0,
                      item_ids=["a", "b"], planned_units=space.units(graph), measured_units=0.0, latency=1.0)


def _first_update(cls: type[AgentReinforce], **options: Any) -> str:
    pool = load_pool("local")
    task = load_task("arithmetic", size=12)
    space = SearchSpace(pool, task.lengths, Budget.from_nodes(3, pool, task.lengths))
    prof = Profile(task="arithmetic", task_config=None, pool="local", models=list(pool.models), items=4,
                   source="measured", singles={S: {"accuracy": 0.25}, G: {"accuracy": 0.75}})
    backend = ScriptedBackend(["not a graph"])
    opt = cls(space, context=SearchContext(backend=backend, task=task, profile=prof), pretest=False,
              agent_retries=0, **options) if cls is AgentReinforce else cls(
        space, context=SearchContext(backend=backend, task=task), agent_retries=0, **options)
    (p,) = asyncio.run(opt.ask())
    opt.tell([_evaluation(p.graph, space)])
    asyncio.run(opt.ask())
    return backend.calls[-1].messages[-1]["content"]


def test_update_prompt_shows_single_model_accuracies_and_a_worked_example() -> None:
    update = _first_update(AgentReinforce, agent_context=0)
    assert "gemma-3-270m: 75%" in update and "smollm2-135m: 25%" in update
    assert "Worked example" in update and '"x1->out":0.6' in update
    # a small agent context drops the example first, then the accuracies, before the rules
    tight = _first_update(AgentReinforce, agent_context=1900, agent_max_tokens=200)
    assert "Worked example" not in tight and "Rules:" in tight and "gemma-3-270m: 75%" in tight
    stripped = _first_update(TextGrad, agent_context=0)  # TextGrad is told no data and no example
    assert "Worked example" not in stripped and "75%" not in stripped


# ----- 5. TextGrad is held to the rules its prompt states -----------------------------------------

def _view() -> Graph:
    return Graph([Node("n1", S), Node("n2", G), Node("out", S)], [("n1", "out"), ("n2", "out")], "out")


def _reply(graph: dict[str, Any]) -> str:
    return json.dumps({"graph": graph, "edge_probabilities": {}})


def test_textgrad_replies_are_checked_only_for_what_its_prompt_says() -> None:
    view, models = _view(), [S, G]
    strict = rules_for(view, {S: 1, G: 1}, models, forward_only=True, latency=False)
    lenient = rules_for(view, {S: 1, G: 1}, models, forward_only=True, latency=False, lenient=True)
    recounted = _reply({"n1": {"model": G, "role": "assistant", "preds": []},
                        "n2": {"model": G, "role": "fuser", "preds": []},  # a fuser with nothing to fuse
                        "out": {"model": S, "role": "assistant", "preds": ["n1", "n2"]}})
    with pytest.raises(Exception, match="fuser 'n2' has no assistant"):
        parse_update_reply(recounted, strict)
    reply = parse_update_reply(recounted, lenient)  # counts free, the role repaired
    assert reply.graph.node("n2").role == "assistant" and reply.graph.node("n1").model == G
    cyclic = _reply({"n1": {"model": S, "role": "assistant", "preds": ["n2"]},
                     "n2": {"model": G, "role": "assistant", "preds": ["n1"]},
                     "out": {"model": S, "role": "assistant", "preds": ["n1"]}})
    with pytest.raises(Exception, match="cycle"):
        parse_update_reply(cyclic, lenient)
    moved_output = _reply({"n1": {"model": S, "role": "assistant", "preds": []},
                           "n2": {"model": G, "role": "assistant", "preds": []},
                           "out": {"model": G, "role": "assistant", "preds": ["n1"]}})
    with pytest.raises(Exception, match="R6"):
        parse_update_reply(moved_output, lenient)


def test_textgrad_accepts_a_recounted_reply_first_try_and_repairs_it_to_the_budget() -> None:
    pool = load_pool("local")
    task = load_task("arithmetic", size=12)
    space = SearchSpace(pool, task.lengths, Budget.from_nodes(3, pool, task.lengths))

    def agent(model: str, messages: list[dict[str, str]], sample: int) -> str:
        form = json.loads(messages[-1]["content"].rsplit("in this form:\n", 1)[1])
        ids = [i for i in form["graph"] if i != "out"]
        graph = {i: {"model": G, "role": "assistant", "preds": []} for i in ids}  # every worker the larger model
        graph["out"] = {**form["graph"]["out"], "preds": ids}
        return json.dumps({"graph": graph, "edge_probabilities": form["edge_probabilities"]})

    opt = TextGrad(space, context=SearchContext(backend=ScriptedBackend(agent), task=task), agent=S)
    (p0,) = asyncio.run(opt.ask())
    opt.tell([_evaluation(p0.graph, space)])
    (p1,) = asyncio.run(opt.ask())
    assert p1.meta["source"] == "agent" and p1.meta["attempts"] == 1
    assert space.fits(p1.graph) and {n.model for n in p1.graph.nodes if n.id != "out"} <= {G}
    assert p1.meta["counts"][G] == sum(p1.meta["counts"].values())  # the counts follow the reply


# ----- 6. per-method pools ------------------------------------------------------------------------

def test_a_method_pool_is_the_pool_of_that_optimizer_only() -> None:
    base = {"task": "math500", "models": "paper", "method_pools": {"textgrad": "paper-full"}, "budget": {"nodes": 4}}
    assert make_config(base).pool_spec == "paper"
    assert make_config({**base, "optimizer": {"name": "textgrad"}}).pool_spec == "paper-full"
    # a stored run (serve, report) knows the pool its graphs were searched over
    from ttsgraph.config import pool_spec_of

    assert pool_spec_of(make_config({**base, "optimizer": {"name": "textgrad"}}).to_json()) == "paper-full"
    assert pool_spec_of({"models": "local"}) == "local"

    async def pool_of(name: str) -> list[str]:
        config = make_config({**base, "optimizer": {"name": name, "options": {"agent": L8}}})
        async with build_runtime(config, fake_backend=ScriptedBackend(["x"])) as rt:
            return list(rt.space().models)

    assert len(asyncio.run(pool_of("textgrad"))) == 7 and len(asyncio.run(pool_of("agent-reinforce"))) == 4
    with pytest.raises(Exception, match="method_pools"):
        make_config({**base, "method_pools": {"no-such-optimizer": "paper"}})


def test_the_paper_recipe_splits_the_pools_as_the_paper_did() -> None:
    from pathlib import Path

    from ttsgraph.config import from_sources
    from ttsgraph.models import load_pool as load

    recipe = Path(__file__).resolve().parents[1] / "examples" / "recipes" / "paper-math-b4.toml"
    cfg = from_sources(recipe, {})
    assert load(cfg.pool_spec).models == [L1, L3, L8, L70]
    for name in ("textgrad", "random", "tpe", "reinforce", "hybrid"):
        pool = load(cfg.model_copy(update={"optimizer": cfg.optimizer.model_copy(update={"name": name})}).pool_spec)
        assert sorted(pool.models) == sorted([L1, L3, L8, L70, "gemma-3-1b", "gemma-2b", "gemma-7b"])
    assert cfg.sampling.max_tokens == 4096 and cfg.sampling.output_max_tokens == 1000


# ----- 7. the output node's own token cap -----------------------------------------------------------

def test_output_node_gets_its_own_max_tokens() -> None:
    from ttsgraph.executor import Executor

    pool, task = load_pool("local"), load_task("arithmetic", size=4)
    backend = ScriptedBackend(lambda model, messages, sample: "Answer: 1")
    graph = Graph([Node("n1", S), Node("n2", S), Node("out", S)], [("n1", "out"), ("n2", "out")], "out")
    params = SamplingParams(max_tokens=64, output_max_tokens=16)
    asyncio.run(Executor(backend, pool, task, params).run_item(graph, task.items("search")[0]))
    caps = sorted(c.params.max_tokens for c in backend.calls)
    assert caps == [16, 64, 64] and all(c.params.output_max_tokens is None for c in backend.calls)
    # unset, request keys are what they were (cached replies stay valid)
    assert "output_max_tokens" not in SamplingParams(max_tokens=64).to_dict()
    assert make_config({"task": "arithmetic", "sampling": {"output_max_tokens": 16}}).sampling.params() == params.__class__(
        max_tokens=256, output_max_tokens=16)


# ----- 8. the paper's budget labels -----------------------------------------------------------------

def test_a_budget_just_below_a_reference_bound_warns_naming_the_b_it_means() -> None:
    pool = load_pool("paper")
    assert reference_bound_units(8, pool, MATH) == pytest.approx(42.96, abs=0.01)
    assert meant_node_budget(42.0, pool, MATH) == 8  # the paper's "42" is its b = 8
    assert meant_node_budget(42.96, pool, MATH) is None and meant_node_budget(30.0, pool, MATH) is None
    with pytest.warns(UserWarning, match=r"b = 8 .*--budget-nodes 8"):
        assert units_budget(42.0, pool, MATH).units == 42.0
    assert SearchSpace(pool, MATH, Budget(42.0)).node_budget == 7  # the units still mean what they say
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        units_budget(43.0, pool, MATH)

    async def budget_of(units: float) -> Budget:
        config = make_config({"task": "math500", "models": "paper", "budget": {"units": units}})
        async with build_runtime(config, fake_backend=ScriptedBackend(["x"])) as rt:
            return rt.budget()

    with pytest.warns(UserWarning, match="--budget-nodes 8"):  # what `ttsgraph search --budget 42` goes through
        asyncio.run(budget_of(42.0))


# ----- the bench row: how the agent's update replies went ---------------------------------------------

def test_reply_outcomes_count_first_try_retries_and_fallbacks() -> None:
    from ttsgraph.benchmark.results import reply_outcomes

    metas = [{"phase": "pretest"}, {"phase": "initial"}, {"phase": "update", "source": "agent", "attempts": 1},
             {"phase": "update", "source": "agent", "attempts": 3},
             {"phase": "update", "source": "fallback-sample", "attempts": 4}]
    assert reply_outcomes(metas) == {"first_try": 1, "after_retries": 1, "fallback": 1}
    assert reply_outcomes([{"phase": "random"}]) == {}


@pytest.mark.integration
def test_the_token_estimate_never_undercounts_an_update_prompt_for_the_embedded_agent() -> None:
    """The estimate keeps an embedded agent's calls inside its 2048 tokens; at 3.5 characters per token
    it undercounted these dense prompts by a third and the calls overflowed the context."""
    from llama_cpp import Llama

    from ttsgraph.llm.local import resolve_local_model
    from ttsgraph.search.agent_update import estimate_tokens

    path = resolve_local_model(S).locate()
    tokenizer = Llama(str(path), vocab_only=True, verbose=False)
    for cls, options in ((AgentReinforce, {"agent_context": 0}), (TextGrad, {"agent_context": 0})):
        user = _first_update(cls, **options)
        messages = [{"role": "system", "content": P.SYSTEM}, {"role": "user", "content": user}]
        actual = sum(len(tokenizer.tokenize(m["content"].encode(), add_bos=False)) for m in messages)
        assert estimate_tokens(messages) >= actual
