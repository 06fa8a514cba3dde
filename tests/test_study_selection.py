"""Racing and Pareto selection inside a real study (scripted backend): racing overturns a lucky
first impression, a resume mid-race reuses the finished race trials, and the Pareto choice is the
documented one (the top-ranked candidate on the front of accuracy ↑, planned units ↓, latency ↓)."""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from ttsgraph.cost import Budget
from ttsgraph.evaluator import LocalEvaluator
from ttsgraph.graph import Graph, chain, parallel, single
from ttsgraph.llm.base import Message
from ttsgraph.llm.fake import ScriptedBackend
from ttsgraph.llm.router import build_backend
from ttsgraph.models import load_pool
from ttsgraph.search.base import Optimizer, Proposal
from ttsgraph.search.space import SearchSpace
from ttsgraph.store import RunStore
from ttsgraph.study import ItemStream, Study
from ttsgraph.tasks import load_task

SMOL, GEMMA = "smollm2-135m", "gemma-3-270m"
SEED = 0


class InTurn(Optimizer):
    """Proposes its graphs in turn, one batch each."""

    name = "test-in-turn"

    def __init__(self, space: SearchSpace, graphs: list[Graph], **kw: Any) -> None:
        super().__init__(space, **kw)
        self.graphs = graphs

    async def ask(self) -> list[Proposal]:
        return [Proposal(self.graphs[len(self.history) % len(self.graphs)], self.batch)]


def question(text: str) -> str:
    return re.search(r"What is [-+*\d ]+\?", text).group(0)  # type: ignore[union-attr]


def value(q: str) -> int:
    return int(eval(q[len("What is "):-1]))  # test-only: our own digits and + - *


def responder(lucky: set[str], unlucky: set[str]):  # type: ignore[no-untyped-def]
    """A lone SmolLM is right only on the `lucky` questions; Gemma is right except on the
    `unlucky` ones; SmolLM given answers repeats the first one."""

    def respond(model: str, messages: list[Message], sample: int) -> str:
        text = messages[-1]["content"]
        q = question(text)
        given = re.findall(r"Answer: (-?\d+)", text)
        if model == SMOL:
            return f"Answer: {given[0]}" if given else f"Answer: {value(q) + (0 if q in lucky else 1)}"
        return f"Answer: {value(q) + (1 if q in unlucky else 0)}"

    return respond


def make_study(run: Path, graphs: list[Graph], *, backend: Any, iterations: int, batch: int, **kw: Any) -> Study:
    task = load_task("arithmetic", size=40)
    pool = load_pool("local")
    space = SearchSpace(pool, task.lengths, Budget.from_nodes(4, pool, task.lengths))
    opt = InTurn(space, graphs, seed=SEED, iterations=iterations, batch=batch)
    store = RunStore.open(run) if (run / "run.sqlite").exists() else RunStore.create(run)
    evaluator = LocalEvaluator(build_backend(pool, None, fake=backend), pool, task)
    return Study(store, task, pool, space, opt, evaluator, iterations=iterations, batch=batch, seed=SEED,
                 test_limit=0, **kw)


LONE, HELPED = single(SMOL), parallel(1, GEMMA, SMOL)


def racing_backend() -> ScriptedBackend:
    """LONE is lucky on its two search items (2/2) and wrong everywhere else; HELPED misses one of
    its two (1/2) and is right everywhere else: the search alone picks LONE, racing HELPED."""
    stream = ItemStream(load_task("arithmetic", size=40).items("search"), SEED).take(0, 4)
    lucky = {stream[0].question, stream[1].question}
    return ScriptedBackend(responder(lucky, unlucky={stream[2].question}))


def test_racing_overturns_a_lucky_search_score(tmp_path: Path) -> None:
    plain = make_study(tmp_path / "plain", [LONE, HELPED], backend=racing_backend(), iterations=2, batch=2)
    with plain.store:
        chosen = asyncio.run(plain.run()).best.graph.canonical_hash()
        assert chosen == plain.store.trials()[0].graph_hash  # LONE's 2/2 beats HELPED's 1/2

    raced = make_study(tmp_path / "raced", [LONE, HELPED], backend=racing_backend(), iterations=2, batch=2,
                       race=2, race_items=6)
    with raced.store:
        result = asyncio.run(raced.run())
        races = raced.store.trials("race")
        search = raced.store.trials("search")
    assert [t.graph_hash for t in races] == [t.graph_hash for t in search]  # ranked order: LONE, then HELPED
    assert [t.meta["race_of"] for t in races] == [t.id for t in search]
    assert races[1].correct == 6 and races[0].correct < 3
    assert result.best.graph.canonical_hash() == search[1].graph_hash
    assert (result.search_items, result.search_accuracy) == (8, 7 / 8)  # pooled over search and race
    assert result.evaluations == 4 + 2 * 6


def test_a_resume_mid_race_reuses_the_finished_race_trials(tmp_path: Path) -> None:
    kw: dict[str, Any] = dict(iterations=2, batch=2, race=2, race_items=6)
    whole = make_study(tmp_path / "whole", [LONE, HELPED], backend=racing_backend(), **kw)
    with whole.store:
        expected = asyncio.run(whole.run()).to_dict()
        expected_trials = [(t.kind, t.graph_hash, t.item_ids, t.correct) for t in whole.store.trials()]

    class Crash(BaseException):
        pass

    def die_in_the_second_race(event: dict[str, Any]) -> None:
        if event["kind"] == "item" and event["label"] == "racing 2/2":
            raise Crash()

    crashing = make_study(tmp_path / "crash", [LONE, HELPED], backend=racing_backend(), **kw)
    with crashing.store, pytest.raises(Crash):
        asyncio.run(crashing.run(die_in_the_second_race))
    with RunStore.open(tmp_path / "crash", readonly=True) as store:
        (first_race,) = store.trials("race")

    labels: Counter[str] = Counter()
    resumed = make_study(tmp_path / "crash", [LONE, HELPED], backend=racing_backend(), **kw)
    with resumed.store:
        result = asyncio.run(resumed.run(lambda e: labels.update([e.get("label", "")])))
        races = resumed.store.trials("race")
        trials = [(t.kind, t.graph_hash, t.item_ids, t.correct) for t in resumed.store.trials()]
    assert labels["racing 1/2"] == 0 and labels["racing 2/2"] == 6  # only the unfinished race is scored
    assert (races[0].id, races[0].created) == (first_race.id, first_race.created)
    assert trials == expected_trials
    got = result.to_dict()
    for key in ("best_graph", "best_trial", "search_accuracy", "search_items", "evaluations", "trials"):
        assert got[key] == expected[key], key


def dominated(a: tuple[float, float, float], b: tuple[float, float, float]) -> bool:
    """b dominates a: accuracy ≥, units ≤, latency ≤, one of them strictly."""
    return b[0] >= a[0] and b[1] <= a[1] and b[2] <= a[2] and b != a


def seconds(model: str, messages: list[Message]) -> float:
    """Gemma is slow, SmolLM fast; a synthesis call costs a little more."""
    return (0.3 if model == GEMMA else 0.05) + (0.02 if "Answers from other models" in messages[-1]["content"] else 0)


@pytest.mark.parametrize("objective", ["accuracy", "accuracy-latency"])
def test_the_pareto_choice_is_the_top_ranked_graph_on_the_front(tmp_path: Path, objective: str) -> None:
    graphs = [LONE, HELPED, parallel(2, GEMMA, SMOL), chain(2, SMOL), parallel(2, SMOL, SMOL)]
    stream = ItemStream(load_task("arithmetic", size=40).items("search"), SEED).take(0, 30)
    backend = ScriptedBackend(responder({i.question for i in stream[::2]}, {i.question for i in stream[::5]}),
                              seconds=seconds)
    study = make_study(tmp_path / "run", graphs, backend=backend, iterations=10, batch=3, select="pareto",
                       objective=objective, latency_weight=0.5)
    with study.store:
        result = asyncio.run(study.run())
        trials = study.store.trials()
        recorded = study.store.get_config("selection")
    # the documented rule, computed here from the stored trials alone
    by_graph: dict[str, dict[str, Any]] = {}
    for t in trials:
        g = by_graph.setdefault(t.graph_hash, {"first": t.id, "units": t.planned_units, "correct": 0, "items": 0,
                                               "lat": 0.0})
        g["correct"] += t.correct
        g["items"] += t.scored + t.errors
        g["lat"] += (t.latency_mean or 0.0) * t.scored
    points = {h: (g["correct"] / g["items"], g["units"], g["lat"] / g["items"]) for h, g in by_graph.items()}
    front = {h for h, p in points.items() if not any(dominated(p, q) for q in points.values())}
    assert 1 < len(front) < len(points), points  # a real front: some graphs on it, some dominated
    ref = trials[0].latency_mean
    w = 0.5 if objective == "accuracy-latency" else 0.0

    def rank(h: str) -> tuple[float, float, int]:
        acc, units, lat = points[h]
        return (-(acc - w * lat / ref), units, by_graph[h]["first"])

    chosen = min(front, key=rank)
    assert recorded["rule"] == "pareto" and recorded["graph_hash"] == chosen
    assert sorted(recorded["pareto"]) == sorted(by_graph[h]["first"] for h in front) == sorted(result.pareto)
    assert result.best.graph.canonical_hash() == chosen
