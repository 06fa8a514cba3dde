"""The contract every optimizer must pass, Optuna-style: subclass `OptimizerContract`, name yours.

    from ttsgraph.testing.optimizer_contract import OptimizerContract

    class TestMyOptimizer(OptimizerContract):
        optimizers = ("my-optimizer",)          # registered names (`search.base.register`)

pytest then checks each name for what the study, the store and `ttsgraph bench` rely on: proposals
validate and fit the budget; one ask never spends more than one batch of items, so a study of K
iterations never exceeds K × batch evaluations; the same seed gives the same proposals; the state
survives a JSON round trip and a resumed optimizer continues exactly as the uninterrupted one,
failed trials included; after trials where every item errored the optimizer moves on instead of
re-proposing the same graph. Scores come from a deterministic synthetic objective (no model
involved), and optimizers with an `agent` option talk to a scripted agent (`ttsgraph.llm.fake`), so
the checks are exact. Override `optimizer_kwargs` if yours needs more than a `SearchContext`.

The module imports no pytest: the class's `pytest_generate_tests` hook parametrizes the methods,
and the few checks that need `pytest.raises`/`pytest.skip` import it when they run.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

from ttsgraph.cost import PAPER_LENGTHS, Budget, TaskLengths
from ttsgraph.graph import Graph
from ttsgraph.llm.base import Message
from ttsgraph.llm.fake import ScriptedBackend
from ttsgraph.models import load_pool
from ttsgraph.search.base import (
    Evaluation,
    Optimizer,
    Proposal,
    SearchContext,
    get_optimizer,
)
from ttsgraph.search.space import SearchSpace
from ttsgraph.tasks.arithmetic import ArithmeticTask

BUILTIN_OPTIMIZERS = ("random", "tpe", "reinforce", "textgrad", "hybrid", "agent-reinforce")
ITERATIONS, BATCH = 6, 3
Score = Callable[[int, Proposal, SearchSpace], Evaluation]


# ---- spaces --------------------------------------------------------------------------------

def paper_space(output_searched: bool = False) -> SearchSpace:
    """The paper's pool on MATH lengths at b = 6: mixes of 1B and 3B models, several shapes."""
    pool = load_pool("paper")
    lengths = PAPER_LENGTHS["math"]
    kw: dict[str, Any] = {"output_model": None} if output_searched else {}
    return SearchSpace(pool, lengths, Budget.from_nodes(6, pool, lengths), **kw)


def local_space() -> SearchSpace:
    """The embedded pool on arithmetic-like lengths, with a budget given in units."""
    pool = load_pool("local")
    return SearchSpace(pool, TaskLengths(12.0, 10.0), Budget(9.0))


SPACES: dict[str, Callable[[], SearchSpace]] = {
    "paper-b6": lambda: paper_space(), "paper-b6-searched-output": lambda: paper_space(True), "local-9u": local_space}


# ---- a scripted agent that always replies with a usable answer -------------------------------

def echo_agent(model: str, messages: list[Message], sample: int) -> str:
    """A deterministic stand-in agent that always replies with something usable:

    - initialization: the first option(s) listed;
    - Agent-REINFORCE/TextGrad update: the graph it was shown (the JSON form at the end of the
      prompt), unchanged, with every edge of the table at 0.5;
    - hybrid rewrite: the tables it was shown, with every edge into the output raised to 0.7.
    """
    text = messages[-1]["content"]
    if '"picks"' in text:
        k = 1 if "Pick one option" in text else 2
        return json.dumps({"picks": list(range(k))})
    if "Current edge probabilities:" in text:
        edges = json.loads(text.split("Current edge probabilities:\n", 1)[1].split("\n", 1)[0])
        fuser = json.loads(text.split("Current fuser probabilities:\n", 1)[1].split("\n", 1)[0])
        edges = {k: (0.7 if k.endswith("->out") else v) for k, v in edges.items()}
        return json.dumps({"edge_probabilities": edges, "fuser_probabilities": fuser})
    prompt = next(m["content"] for m in reversed(messages) if "in this form:\n" in m["content"])  # retries too
    shown = json.loads(prompt.rsplit("in this form:\n", 1)[1].strip().split("\n", 1)[0])
    table = {k: 0.5 for k in shown.get("edge_probabilities", {})}
    return json.dumps({"graph": shown["graph"], "edge_probabilities": table})


def uses_agent(name: str) -> bool:
    """Whether the optimizer talks to an LLM agent (it has an `agent` option)."""
    return "agent" in get_optimizer(name).Options.model_fields


def optimizer_kwargs(name: str, space: SearchSpace, backend: Any = None, task: Any = None) -> dict[str, Any]:
    """What the runtime gives every optimizer (a `SearchContext`: backend, task), plus the agent
    model from the pool for LLM-driven ones; their backend is the scripted agent by default."""
    task = task if task is not None else ArithmeticTask(seed=0, size=30)
    if not uses_agent(name):
        return {"context": SearchContext(backend=backend, task=task)}
    return {"context": SearchContext(backend=backend or ScriptedBackend(echo_agent), task=task),
            "agent": space.pool.output}


# ---- deterministic synthetic objectives ---------------------------------------------------------

def synthetic_eval(trial: int, p: Proposal, space: SearchSpace) -> Evaluation:
    """A score that depends only on the graph: more edges and a bigger output in-degree score
    higher, with a hash-based perturbation, so optimizers get a signal and runs are exact."""
    g = p.graph
    h = int(hashlib.sha256(g.canonical_form().encode()).hexdigest()[:6], 16) / 0xFFFFFF
    raw = min(1.0, 0.15 * g.in_degree(g.output) + 0.05 * len(g.edges) + 0.2 * h)
    correct = round(raw * p.n_items)
    ids = [f"item{trial}-{k}" for k in range(p.n_items)]
    return Evaluation(trial=trial, graph=g, accuracy=correct / p.n_items, utility=correct / p.n_items,
                      correct=correct, scored=p.n_items, errors=0, item_ids=ids,
                      planned_units=space.units(g), measured_units=space.units(g), latency=1.0,
                      meta=dict(p.meta),  # the study stores the proposal's meta with the trial
                      feedback=[{"id": i, "correct": k < correct, "extracted": "1", "error": None}
                                for k, i in enumerate(ids)])


def failed_eval(trial: int, p: Proposal, space: SearchSpace) -> Evaluation:
    """Every item errored (a backend down, a graph that always times out): nothing was scored."""
    ids = [f"item{trial}-{k}" for k in range(p.n_items)]
    return Evaluation(trial=trial, graph=p.graph, accuracy=0.0, utility=0.0, correct=0, scored=0,
                      errors=p.n_items, item_ids=ids, planned_units=space.units(p.graph), measured_units=0.0,
                      latency=0.0, meta=dict(p.meta),
                      feedback=[{"id": i, "correct": False, "extracted": None, "error": "backend down"} for i in ids])


def flaky_eval(trial: int, p: Proposal, space: SearchSpace) -> Evaluation:
    """Every third trial fails outright, the others score as `synthetic_eval`."""
    return failed_eval(trial, p, space) if trial % 3 == 1 else synthetic_eval(trial, p, space)


def drive(opt: Optimizer, space: SearchSpace, asks: int, trial0: int = 0,
          score: Score = synthetic_eval) -> list[list[Proposal]]:
    """Ask/tell `asks` times against `score`; the proposals of each ask."""
    out = []
    trial = trial0
    for _ in range(asks):
        proposals = asyncio.run(opt.ask())
        evals = []
        for p in proposals:
            evals.append(score(trial, p, space))
            trial += 1
        opt.tell(evals)
        out.append(proposals)
    return out


def signature(rounds: list[list[Proposal]]) -> list[list[tuple[str, int]]]:
    return [[(json.dumps(p.graph.to_dict(), sort_keys=True), p.n_items) for p in r] for r in rounds]


def _leaves(obj: Any) -> int:
    """How many numbers and strings a JSON value holds (its size, whatever their digits)."""
    if isinstance(obj, dict):
        return sum(_leaves(v) for v in obj.values())
    if isinstance(obj, list):
        return sum(_leaves(v) for v in obj)
    return 1


class Crash(BaseException):
    """Raised from the progress callback to simulate a process dying mid-study."""


# ---- the contract ---------------------------------------------------------------------------------

class OptimizerContract:
    """The contract as pytest test methods over `optimizers` (see the module docstring).

    `uneven_asks` names optimizers allowed to spend less than one batch on some asks (Agent-REINFORCE's
    one-item pretest probes, SPEC §4.1); every other optimizer spends exactly one batch per ask."""

    optimizers: ClassVar[Sequence[str]] = ()
    uneven_asks: ClassVar[frozenset[str]] = frozenset({"agent-reinforce"})

    def pytest_generate_tests(self, metafunc: Any) -> None:
        """pytest's hook, on this class: run every method once per optimizer (and space)."""
        if "optimizer_name" in metafunc.fixturenames:
            metafunc.parametrize("optimizer_name", list(self.optimizers))
        if "space_name" in metafunc.fixturenames:
            metafunc.parametrize("space_name", sorted(SPACES))

    def optimizer_kwargs(self, name: str, space: SearchSpace, backend: Any = None, task: Any = None) -> dict[str, Any]:
        return optimizer_kwargs(name, space, backend, task)

    def make(self, name: str, space: SearchSpace, seed: int = 0) -> Optimizer:
        return get_optimizer(name)(space, seed=seed, iterations=ITERATIONS, batch=BATCH,
                                   **self.optimizer_kwargs(name, space))

    def test_every_proposal_validates_and_fits_the_budget(self, optimizer_name: str, space_name: str) -> None:
        space = SPACES[space_name]()
        rounds = drive(self.make(optimizer_name, space, seed=3), space, ITERATIONS)
        assert rounds and all(rounds)
        for proposals in rounds:
            for p in proposals:
                assert isinstance(p.graph, Graph)
                space.check(p.graph)  # validates, output model rule, within budget
                assert p.graph.pruned()[1] == [], "proposals must not carry dead nodes"
                assert p.n_items >= 1
                json.dumps(p.meta)  # stored with the trial

    def test_no_graph_asks_for_more_than_a_batch(self, optimizer_name: str) -> None:
        """A graph is scored on at most one batch; an ask proposes at least one graph. (The total
        over a study is capped by the study, which trims the last ask: see the study check below.)"""
        space = paper_space()
        for r in drive(self.make(optimizer_name, space, seed=5), space, ITERATIONS):
            assert r, "an ask must propose at least one graph"
            assert all(1 <= p.n_items <= BATCH for p in r), [p.n_items for p in r]

    def test_spends_exactly_one_batch_per_ask(self, optimizer_name: str) -> None:
        """Fairness: optimizers spend the evaluation budget evenly, but for declared exceptions."""
        if optimizer_name in self.uneven_asks:
            import pytest

            pytest.skip(f"{optimizer_name} is declared in uneven_asks (screening probes)")
        space = paper_space()
        rounds = drive(self.make(optimizer_name, space, seed=5), space, ITERATIONS)
        assert [sum(p.n_items for p in r) for r in rounds] == [BATCH] * ITERATIONS

    def test_same_seed_same_proposals(self, optimizer_name: str) -> None:
        space = paper_space()
        a = signature(drive(self.make(optimizer_name, space, seed=11), space, ITERATIONS))
        b = signature(drive(self.make(optimizer_name, space, seed=11), space, ITERATIONS))
        assert a == b

    def test_different_seeds_explore_differently(self, optimizer_name: str) -> None:
        space = paper_space()
        runs = {json.dumps(signature(drive(self.make(optimizer_name, space, seed=s), space, ITERATIONS)))
                for s in range(4)}
        assert len(runs) > 1, "four seeds produced identical searches: the seed is not used"

    def test_moves_on_after_failed_trials(self, optimizer_name: str) -> None:
        """A trial where every item errored must still change what comes next: an optimizer that
        forgets it re-proposes the same graph on every ask, and an always-failing graph eats the
        rest of the budget. An agent optimizer's next graph is its agent's choice (the scripted one
        echoes the graph it is shown whatever the scores), so for it the failure must reach the agent."""
        space = paper_space()
        if not uses_agent(optimizer_name):
            rounds = signature(drive(self.make(optimizer_name, space, seed=1), space, ITERATIONS, score=failed_eval))
            assert len({json.dumps(r) for r in rounds[-4:]}) > 1, "the same proposals came back after every failure"
            return
        shown = []
        for score in (synthetic_eval, failed_eval):
            agent = ScriptedBackend(echo_agent)
            opt = get_optimizer(optimizer_name)(space, seed=1, iterations=ITERATIONS, batch=BATCH,
                                                **self.optimizer_kwargs(optimizer_name, space, backend=agent))
            drive(opt, space, ITERATIONS, score=score)
            shown.append([c.messages[-1]["content"] for c in agent.calls])
        assert shown[0] != shown[1], "the agent was told the same whether the trials scored or failed"

    def test_state_round_trips_and_resume_continues_identically(self, optimizer_name: str) -> None:
        space = paper_space()
        for score in (synthetic_eval, flaky_eval):
            whole = signature(drive(self.make(optimizer_name, space, seed=7), space, ITERATIONS, score=score))
            for split in (1, 3):
                first = self.make(optimizer_name, space, seed=7)
                head = drive(first, space, split, score=score)
                state = json.loads(json.dumps(first.state_dict()))  # must be JSON-able
                # what the study hands back on resume: the evaluations told so far, rebuilt from the store
                history = [Evaluation.from_dict(json.loads(json.dumps(e.to_dict()))) for e in first.history]
                resumed = self.make(optimizer_name, space, seed=7)
                resumed.load_state_dict(state, history=history)
                tail = drive(resumed, space, ITERATIONS - split, trial0=sum(len(r) for r in head), score=score)
                assert signature(head) + signature(tail) == whole, (score.__name__, split)

    def test_the_state_does_not_grow_with_the_iterations(self, optimizer_name: str) -> None:
        """The study stores the state after every iteration: a state that grew with the history
        would make the store grow quadratically (issue 10). Asked three times as long, the state
        holds no more values than it ever did in the first run's length."""
        space = paper_space()
        opt = self.make(optimizer_name, space, seed=7)
        sizes = []
        for k in range(3 * ITERATIONS):
            drive(opt, space, 1, trial0=100 * k)
            sizes.append(_leaves(json.loads(json.dumps(opt.state_dict()))))
        assert max(sizes[ITERATIONS:]) <= max(sizes[:ITERATIONS]), sizes

    def test_agent_seconds_is_a_non_negative_number(self, optimizer_name: str) -> None:
        space = paper_space()
        opt = self.make(optimizer_name, space, seed=2)
        drive(opt, space, 2)
        seconds = opt.agent_seconds()
        assert isinstance(seconds, float) and seconds >= 0.0
        if not uses_agent(optimizer_name):
            assert seconds == 0.0

    # ---- inside a real study: the evaluation budget and crash/resume -------------------------

    def study(self, name: str, run_dir: Path, resume: bool = False,
              crash_at: tuple[int, int] | None = None) -> tuple[Any, list[tuple[Any, ...]]]:
        """A study of `name` on arithmetic with a scripted worker; `crash_at` = (iteration,
        position) of the trial after whose storing the process "dies"."""
        from ttsgraph.evaluator import LocalEvaluator
        from ttsgraph.store import RunStore
        from ttsgraph.study import Study

        task = ArithmeticTask(seed=2, size=30)
        pool = load_pool("local")
        space = SearchSpace(pool, task.lengths, Budget(9.0))
        backend = ScriptedBackend(scripted_worker(task))
        store = RunStore.open(run_dir) if resume else RunStore.create(run_dir)
        opt = get_optimizer(name)(space, seed=4, iterations=ITERATIONS, batch=BATCH,
                                  **self.optimizer_kwargs(name, space, backend=backend, task=task))

        def progress(event: dict[str, Any]) -> None:
            if crash_at is not None and event.get("kind") == "trial" and (event["iteration"], event["position"]) == crash_at:
                raise Crash()

        with store:
            study = Study(store, task, pool, space, opt, LocalEvaluator(backend, pool, task), iterations=ITERATIONS,
                          batch=BATCH, seed=4, test_limit=0)
            result = asyncio.run(study.run(progress=progress))
            trials = [(t.iteration, t.position, t.graph_hash, tuple(t.item_ids), t.correct)
                      for t in store.trials("search")]
        return result, trials

    def test_a_study_never_exceeds_the_evaluation_budget(self, optimizer_name: str, tmp_path: Path) -> None:
        result, trials = self.study(optimizer_name, tmp_path / "run")
        used = sum(len(t[3]) for t in trials)
        assert used == result.evaluations == ITERATIONS * BATCH
        item_ids = [i for t in trials for i in t[3]]
        assert len(item_ids) == len(set(item_ids)), "a search item was scored twice within one budget"

    def test_a_crashed_study_resumes_to_the_same_trials(self, optimizer_name: str, tmp_path: Path) -> None:
        import pytest

        _, whole = self.study(optimizer_name, tmp_path / "whole")
        with pytest.raises(Crash):
            self.study(optimizer_name, tmp_path / "crashed", crash_at=(2, 0))
        _, resumed = self.study(optimizer_name, tmp_path / "crashed", resume=True)
        assert resumed == whole


def scripted_worker(task: Any) -> Callable[[str, list[Message], int], str]:
    """The scripted backend of `OptimizerContract.study`: agent prompts go to `echo_agent`, worker
    prompts get the right answer or an off-by-one one depending on the prompt, so graphs differ."""
    from ttsgraph.search import agent_prompts as P

    answers = {i.question: i.answer for s in ("search", "test") for i in task.items(s)}

    def worker(model: str, messages: list[Message], sample: int) -> str:
        if messages[0]["content"] == P.SYSTEM:
            return echo_agent(model, messages, sample)
        text = messages[-1]["content"]
        q = next(q for q in answers if q in text)
        ok = (len(text) + sample) % 3 != 0
        return f"Answer: {int(answers[q]) + (0 if ok else 1)}"

    return worker


__all__ = ["OptimizerContract", "BUILTIN_OPTIMIZERS", "ITERATIONS", "BATCH", "SPACES", "paper_space", "local_space",
           "echo_agent", "uses_agent", "optimizer_kwargs", "synthetic_eval", "failed_eval", "flaky_eval", "drive",
           "signature", "scripted_worker", "Crash"]
