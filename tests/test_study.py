"""The study loop with the scripted fake backend: budget, item stream, repair, selection, test, resume."""

from __future__ import annotations

import asyncio
import json
import re
import pytest

from ttsgraph.cost import Budget
from ttsgraph.errors import BackendError, TtsGraphError
from ttsgraph.evaluator import LocalEvaluator
from ttsgraph.graph import Graph, Node, chain, fully_connected, parallel
from ttsgraph.llm.fake import ScriptedBackend
from ttsgraph.llm.router import build_backend
from ttsgraph.search.base import Evaluation, Optimizer, Proposal
from ttsgraph.search.space import SearchSpace
from ttsgraph.store import RunStore
from ttsgraph.study import ItemStream, Study
from ttsgraph.tasks import load_task

SMOL, GEMMA = "smollm2-135m", "gemma-3-270m"


def answer_of(question: str) -> int:
    expr = re.search(r"What is ([-+*\d ]+)\?", question).group(1)  # type: ignore[union-attr]
    return int(eval(expr))  # test-only: the expressions are our own digits and + - *


def responder(model: str, messages: list[dict[str, str]], sample: int) -> str:
    """Gemma is always right; SmolLM is right on questions with an even character sum."""
    text = messages[-1]["content"]
    value = answer_of(text)
    if model == GEMMA or sum(map(ord, text.split("What is")[1][:12])) % 2 == 0:
        return f"Answer: {value}"
    return f"Answer: {value + 1}"


class ScriptOpt(Optimizer):
    """Proposes graphs from a fixed list, picked by its RNG; `per_ask` proposals of `n_items` each."""

    name = "test-script"

    def __init__(self, space: SearchSpace, *, seed: int = 0, iterations: int = 10, batch: int = 3,
                 graphs: list[Graph], per_ask: int = 1, n_items: int | None = None) -> None:
        super().__init__(space, seed=seed, iterations=iterations, batch=batch)
        self.graphs = graphs
        self.per_ask = per_ask
        self.n_items = n_items or batch
        self.told: list[list[Evaluation]] = []

    async def ask(self) -> list[Proposal]:
        return [Proposal(self.graphs[int(self.rng.integers(len(self.graphs)))], self.n_items, {"k": len(self.history)})
                for _ in range(self.per_ask)]

    def tell(self, evaluations: list[Evaluation]) -> None:
        super().tell(evaluations)
        self.told.append(evaluations)


@pytest.fixture
def task():
    return load_task("arithmetic", size=12)


def make_study(tmp_path, pool, task, graphs, *, backend=None, store=None, iterations=3, batch=2, budget_nodes=4,
               create=True, opt_cls=ScriptOpt, **kw):
    space = SearchSpace(pool, task.lengths, Budget.from_nodes(budget_nodes, pool, task.lengths))
    opt_kw = {k: kw.pop(k) for k in ("per_ask", "n_items") if k in kw}
    opt = opt_cls(space, seed=kw.get("seed", 0), iterations=iterations, batch=batch, graphs=graphs, **opt_kw)
    backend = backend or build_backend(pool, None, fake=ScriptedBackend(responder))
    concurrency = kw.pop("concurrency", 4)
    store = store or (RunStore.create(tmp_path / "run") if create else RunStore.open(tmp_path / "run"))
    evaluator = LocalEvaluator(backend, pool, task, concurrency=concurrency)
    return Study(store, task, pool, space, opt, evaluator, iterations=iterations, batch=batch, **kw)


def run(study, progress=None):
    return asyncio.run(study.run(progress))


def test_item_stream_is_deterministic_and_cycles():
    items = list(range(5))
    s1, s2 = ItemStream(items, 3), ItemStream(items, 3)
    first = s1.take(0, 5)
    assert sorted(first) == items  # one pass = a permutation
    assert s1.take(0, 12) == s2.take(0, 12)
    assert s1.take(3, 4) == s1.take(0, 7)[3:]
    assert ItemStream(items, 4).take(0, 5) != first or ItemStream(items, 5).take(0, 5) != first
    with pytest.raises(TtsGraphError, match="empty"):
        ItemStream([], 0)


def test_loop_scores_search_items_within_the_evaluation_budget(tmp_path, pool, task):
    graphs = [parallel(2, SMOL, SMOL), Graph([Node("a", GEMMA), Node("out", SMOL)], [("a", "out")], "out")]
    events: list[dict] = []
    study = make_study(tmp_path, pool, task, graphs, iterations=3, batch=3, per_ask=2, n_items=2, test_limit=4)
    result = run(study, events.append)
    trials = study.store.trials()
    # 9 items: asks of (2, 2), (2, 2), (1) — the last ask trimmed to what is left
    assert [len(t.item_ids) for t in trials] == [2, 2, 2, 2, 1]
    assert [(t.iteration, t.position) for t in trials] == [(0, 0), (0, 1), (1, 0), (1, 1), (2, 0)]
    assert result.evaluations == 9
    search_ids = {i.id for i in task.items("search")}
    used = [i for t in trials for i in t.item_ids]
    assert set(used) <= search_ids
    assert used == [i.id for i in ItemStream(task.items("search"), 0).take(0, 9)]
    assert [len(e) for e in study.optimizer.told] == [2, 2, 1]
    # accuracies are what the responder makes them
    items = {i.id: i for i in task.items("search")}
    for t in trials:
        correct = sum(1 for r in study.store.item_results(t.id) if r["correct"])
        assert t.correct == correct and t.accuracy == pytest.approx(correct / t.scored)
        if t.graph.node("out").model == SMOL and t.graph.in_degree("out") == 1 and t.graph.node("a").model == GEMMA:
            pass  # the synthesis node is SmolLM: its correctness depends on the prompt text
    assert result.test is not None and result.test.items == 4
    assert 0.0 <= result.test.ci[0] <= result.test.accuracy <= result.test.ci[1] <= 1.0
    assert (tmp_path / "run" / "best_graph.json").exists()
    saved = json.loads((tmp_path / "run" / "best_graph.json").read_text())
    assert Graph.from_dict(saved).canonical_hash() == result.best.graph.canonical_hash()
    assert result.backend_calls > 0 and result.eval_seconds > 0
    kinds = {e["kind"] for e in events}
    assert {"ask", "item", "trial", "test", "done"} <= kinds
    assert study.store.load_state()[0] == 2
    assert items  # the search split is not empty


def test_over_budget_proposal_is_repaired_and_recorded(tmp_path, pool, task):
    big = fully_connected([SMOL] * 6, SMOL)
    study = make_study(tmp_path, pool, task, [big], iterations=1, batch=2, budget_nodes=3, test_limit=0)
    result = run(study)
    (t,) = study.store.trials()
    assert "repaired" in t.meta and t.meta["repaired"]["removed"]
    assert t.meta["repaired"]["units_before"] > study.space.budget.units >= t.planned_units
    assert study.space.fits(t.graph) and t.scored == 2  # scored, not −1
    assert result.test is None


def test_errors_are_not_wrong_answers(tmp_path, pool, task):
    def flaky(model, messages, sample):
        if model == GEMMA:
            raise BackendError("connection reset", model=model)
        return responder(model, messages, sample)

    g = Graph([Node("a", GEMMA), Node("out", SMOL)], [("a", "out")], "out")
    backend = build_backend(pool, None, fake=ScriptedBackend(flaky))
    study = make_study(tmp_path, pool, task, [g], backend=backend, iterations=2, batch=2, test_limit=0)
    run(study)
    for t in study.store.trials():
        assert t.errors == 2 and t.scored == 0 and t.accuracy == 0.0
        assert all("connection reset" in r["error"] for r in study.store.item_results(t.id))


def test_search_and_test_accuracy_both_count_errors_as_not_correct(tmp_path, pool, task):
    """One accuracy: an errored item is in the denominator of a search trial as of the test score
    (before, search trials left errors out: 1 right + 1 error read 100 % in search, 50 % in test)."""
    def half_broken(model, messages, sample):
        question = messages[-1]["content"]
        if sum(map(ord, question)) % 2:
            raise BackendError("connection reset", model=model)
        return f"Answer: {answer_of(question)}"  # every answered item is right

    backend = build_backend(pool, None, fake=ScriptedBackend(half_broken))
    study = make_study(tmp_path, pool, task, [chain(1, SMOL)], backend=backend, iterations=3, batch=4, test_limit=8)
    result = run(study)
    trials = study.store.trials()
    assert sum(t.errors for t in trials) > 0 and sum(t.scored for t in trials) > 0
    for t in trials:
        assert t.accuracy == pytest.approx(t.correct / (t.scored + t.errors))
    assert result.test is not None and result.test.errors > 0
    assert result.test.accuracy == pytest.approx(result.test.correct / result.test.items)
    items = sum(t.scored + t.errors for t in trials)
    assert result.search_accuracy == pytest.approx(sum(t.correct for t in trials) / items)


def test_select_best_pools_items_and_breaks_ties_by_units(tmp_path, pool, task):
    good = Graph([Node("a", GEMMA), Node("out", SMOL)], [("a", "out")], "out")

    def resp(model, messages, sample):  # every node answers right: all graphs tie at 100%
        return f"Answer: {answer_of(messages[-1]['content'])}"

    backend = build_backend(pool, None, fake=ScriptedBackend(resp))
    cheap = parallel(1, GEMMA, SMOL)
    dear = parallel(3, GEMMA, SMOL)
    study = make_study(tmp_path, pool, task, [dear, cheap, good], backend=backend, iterations=6, batch=2,
                       test_limit=0, budget_nodes=4)
    result = run(study)
    assert result.search_accuracy == 1.0
    units = {t.graph_hash: t.planned_units for t in study.store.trials()}
    assert result.best.planned_units == min(units.values())


class ProbeThenBatch(ScriptOpt):
    """First ask: a one-item screening probe (candidate=False), then real batches of another graph."""

    name = "test-probe"

    async def ask(self) -> list[Proposal]:
        if not self.history:
            return [Proposal(self.graphs[0], 1, candidate=False)]
        return [Proposal(self.graphs[1], self.batch)]


def test_screening_probes_are_never_selected(tmp_path, pool, task):
    calls = []

    def first_call_right(model, messages, sample):  # the probe's single call is right, all later ones wrong
        calls.append(model)
        value = answer_of(messages[-1]["content"]) if "What is" in messages[-1]["content"] else 0
        return f"Answer: {value if len(calls) == 1 else value + 1}"

    probe = Graph([Node("out", SMOL)], [], "out")
    real = parallel(1, GEMMA, SMOL)
    backend = build_backend(pool, None, fake=ScriptedBackend(first_call_right))
    study = make_study(tmp_path, pool, task, [probe, real], backend=backend, iterations=3, batch=2, test_limit=0,
                       opt_cls=ProbeThenBatch)
    events: list[dict] = []
    result = run(study, events.append)
    probe_trial = study.store.trials()[0]
    shown = [e["best_accuracy"] for e in events if e.get("kind") == "trial"]  # what the live display shows
    assert shown[0] is None and set(shown[1:]) == {0.0} and len(shown) >= 3
    assert probe_trial.accuracy == 1.0 and probe_trial.candidate is False
    assert all(t.candidate for t in study.store.trials()[1:])
    assert result.best.graph.canonical_hash() != probe_trial.graph_hash  # 0% on batches beats 1/1 on a probe
    assert result.best.graph.canonical_hash() == study.store.trials()[-1].graph_hash
    # the decision is recorded in the store for the report, with the errors beside the accuracy
    recorded = study.store.get_config("selection")
    assert recorded["graph_hash"] == result.best.graph.canonical_hash() and recorded["rule"] == "best"
    assert recorded["trial"] == result.best_trial and recorded["accuracy"] == result.search_accuracy == 0.0
    assert recorded["items"] == result.search_items == 5 and recorded["errors"] == 0  # 6 items, 1 probed


def test_select_last_returns_the_last_trial(tmp_path, pool, task):
    graphs = [parallel(2, GEMMA, SMOL), chain(2, SMOL)]
    study = make_study(tmp_path, pool, task, graphs, iterations=4, batch=1, select="last", test_limit=0)
    result = run(study)
    assert result.best_trial == study.store.trials()[-1].id


def test_accuracy_latency_objective(tmp_path, pool, task):
    slow = ScriptedBackend(lambda m, msgs, s: f"Answer: {answer_of(msgs[-1]['content'])}",
                           delay=lambda m: 0.05 if m == GEMMA else 0.0)
    backend = build_backend(pool, None, fake=slow)
    graphs = [chain(3, GEMMA, SMOL), parallel(1, SMOL, SMOL)]
    study = make_study(tmp_path, pool, task, graphs, backend=backend, iterations=4, batch=1,
                       objective="accuracy-latency", latency_weight=0.5, test_limit=0)
    result = run(study)
    trials = study.store.trials()
    ref = trials[0].latency_mean
    for t in trials:
        assert t.utility == pytest.approx(t.accuracy - 0.5 * t.latency_mean / ref)
    # both are always right: the fast one wins on utility
    assert result.best.graph.node("out").model == SMOL and len(result.best.graph.nodes) == 2


def test_bad_settings(tmp_path, pool, task):
    with pytest.raises(TtsGraphError, match="objective"):
        make_study(tmp_path, pool, task, [chain(1, SMOL)], objective="speed")
    with pytest.raises(TtsGraphError, match="selection"):
        make_study(tmp_path / "b", pool, task, [chain(1, SMOL)], select="first")


class Crash(BaseException):
    """Stands in for kill -9 in-process: nothing after it runs."""


def crashing_backend(pool, after: int):
    calls = {"n": 0}

    def resp(model, messages, sample):
        calls["n"] += 1
        if calls["n"] > after:
            raise Crash()
        return responder(model, messages, sample)

    return build_backend(pool, None, fake=ScriptedBackend(resp))


def _summary(study, result):
    return ([(t.iteration, t.position, t.graph_hash, t.item_ids, t.correct, t.scored) for t in study.store.trials()],
            result.best.graph.canonical_hash(), result.search_accuracy, result.test.accuracy if result.test else None)


@pytest.mark.parametrize("crash_after", [3, 11, 20])
def test_resume_after_crash_equals_uninterrupted(tmp_path, pool, task, crash_after):
    graphs = [parallel(2, GEMMA, SMOL), chain(2, SMOL), parallel(2, SMOL, SMOL), Graph(
        [Node("a", GEMMA), Node("out", SMOL)], [("a", "out")], "out")]
    kw = dict(iterations=5, batch=3, per_ask=2, n_items=2, test_limit=3, seed=11)
    ref_study = make_study(tmp_path / "ref", pool, task, graphs, **kw)
    reference = _summary(ref_study, run(ref_study))
    ref_study.store.close()

    crashing = make_study(tmp_path / "crash", pool, task, graphs, backend=crashing_backend(pool, crash_after), **kw)
    with pytest.raises(Crash):
        run(crashing)
    stored_before = len(crashing.store.trials())
    crashing.store.close()
    resumed = make_study(tmp_path / "crash", pool, task, graphs, create=False, **kw)
    result = run(resumed)
    assert _summary(resumed, result) == reference
    assert len(resumed.store.trials()) == len(ref_study_trials := reference[0])
    assert stored_before < len(ref_study_trials)


def test_agent_log_is_drained_into_the_store(tmp_path, pool, task):
    class Talky(ScriptOpt):
        name = "test-talky"

        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            self.pending: list[dict] = []

        async def ask(self):
            self.pending.append({"kind": "update", "iteration": len(self.history), "messages": [
                {"role": "user", "content": f"round {len(self.history)}"}], "reply": "ok", "seconds": 0.5,
                "ok": True, "error": None, "cached": False})
            return await super().ask()

        def drain_exchanges(self):
            out, self.pending = self.pending, []
            return out

        def agent_seconds(self):
            return 0.5 * len(self.history)

    study = make_study(tmp_path, pool, task, [chain(1, SMOL)], iterations=3, batch=1, test_limit=0, opt_cls=Talky)
    result = run(study)
    log = study.store.agent_log()
    assert [e["prompt"][0]["content"] for e in log] == ["round 0", "round 1", "round 2"]
    assert log[0]["meta"]["cached"] is False
    assert result.agent_seconds == pytest.approx(1.5)
