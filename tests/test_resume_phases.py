"""Resume is exact for every objective and selection, whichever phase the process died in.

An Agent-REINFORCE study (scripted agent and workers, deterministic latencies) is killed in-process
during each phase — the agent's initialization, the pretest probes, an update batch, racing, the
test — under both objectives and all three selections, resumed, and compared with the
uninterrupted run: every trial (utilities included), the recorded selection and the test score.
The first trial errors on its only item, so the latency reference is not the first stored
trial's (the resume bug of issue 17: resumed utilities drifted from the uninterrupted ones).
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ttsgraph.cost import Budget
from ttsgraph.errors import BackendError
from ttsgraph.evaluator import LocalEvaluator
from ttsgraph.llm.base import Completion, Message, SamplingParams
from ttsgraph.llm.fake import ScriptedBackend
from ttsgraph.models import load_pool
from ttsgraph.search import agent_prompts as P
from ttsgraph.search.base import get_optimizer
from ttsgraph.search.space import SearchSpace
from ttsgraph.store import RunStore
from ttsgraph.study import ItemStream, Study
from ttsgraph.tasks.arithmetic import ArithmeticTask
from ttsgraph.testing.optimizer_contract import (
    echo_agent,
    optimizer_kwargs,
    scripted_worker,
)

SEED = 4
SETTINGS = dict(iterations=6, batch=3, seed=SEED, race=2, race_items=2, test_limit=3, latency_weight=0.05)
PHASES = ("init", "pretest", "update", "racing", "test")
CASES = [(phase, objective, select) for phase in PHASES for objective in ("accuracy", "accuracy-latency")
         for select in ("best", "last", "pareto") if not (phase == "racing" and select == "last")]  # `last` never races


class Crash(BaseException):
    """Stands in for kill -9 in-process: nothing after it runs."""


def varying_agent(model: str, messages: list[Message], sample: int) -> str:
    """`echo_agent`, but an update adds one edge (worker → later worker or output), chosen by the prompt (a pure
    function of it, so a resumed run's re-asked agent replies the same): several candidate graphs."""
    reply = json.loads(echo_agent(model, messages, sample))
    graph = reply.get("graph")
    if isinstance(graph, dict):
        workers = [k for k in graph if k != "out"]
        pairs = [(a, b) for i, a in enumerate(workers) for b in [*workers[i + 1:], "out"] if a not in graph[b]["preds"]]
        if pairs:
            a, b = pairs[len(messages[-1]["content"]) % len(pairs)]
            graph[b]["preds"].append(a)
    return json.dumps(reply)


def call_seconds(model: str, messages: list[Message]) -> float:
    """A latency that depends only on the call (measured time would not be reproducible)."""
    return 0.01 * (1 + len(messages[-1]["content"]) % 7) * (3 if "gemma" in model else 1)


@dataclass
class TimedBackend(ScriptedBackend):
    """Scripted replies with `call_seconds` latencies, failing every call on one question, and
    dying on the `die_on_agent_call`-th agent call if set."""

    failing: str = ""
    die_on_agent_call: int = 0
    agent_calls: int = 0

    async def complete(self, model: str, messages: list[Message], params: SamplingParams,
                       sample: int = 0) -> Completion:
        if messages[0]["content"] == P.SYSTEM:
            self.agent_calls += 1
            if self.agent_calls == self.die_on_agent_call:
                raise Crash()
            return Completion(varying_agent(model, messages, sample), 1, 1, 0.0)
        elif self.failing in messages[-1]["content"]:
            raise BackendError("connection reset", model=model)
        return await super().complete(model, messages, params, sample)


def make_study(run: Path, objective: str, select: str, *, resume: bool = False, die_on_agent_call: int = 0) -> Study:
    task = ArithmeticTask(seed=2, size=30)
    pool = load_pool("local")
    space = SearchSpace(pool, task.lengths, Budget(9.0))
    first = ItemStream(task.items("search"), SEED).take(0, 1)[0]
    backend = TimedBackend(scripted_worker(task), seconds=call_seconds, failing=first.question,
                           die_on_agent_call=die_on_agent_call)
    opt = get_optimizer("agent-reinforce")(space, seed=SEED, iterations=SETTINGS["iterations"],
                                           batch=SETTINGS["batch"],
                                           pretest_variants=1,  # probe the two picks themselves: 5-node mixes
                                           **optimizer_kwargs("agent-reinforce", space, backend=backend, task=task))
    store = RunStore.open(run) if resume else RunStore.create(run)
    return Study(store, task, pool, space, opt, LocalEvaluator(backend, pool, task), objective=objective,
                 select=select, **SETTINGS)


def outcome(study: Study, result: Any) -> tuple[Any, ...]:
    trials = [(t.id, t.kind, t.iteration, t.position, t.graph_hash, tuple(t.item_ids), t.correct, t.errors,
               t.utility, t.latency_mean) for t in study.store.trials()]
    return trials, study.store.get_config("selection"), result.test.accuracy if result.test else None


def crash_point(phase: str, reference: RunStore) -> tuple[str, int]:
    """(progress label, n-th item event of it) at which `phase` dies, from the uninterrupted run."""
    if phase == "pretest":
        return "iteration 1", 2  # the second one-item probe: the first is stored
    if phase == "update":
        it = next(t.iteration for t in reference.trials("search") if t.meta.get("phase") == "update")
        return f"iteration {it + 1}", 2  # mid-batch of the first update
    if phase == "racing":
        races = len(reference.trials("race"))
        return f"racing {races}/{races}", 1  # the earlier race trials are stored
    return "test", 2


_REFERENCES: dict[tuple[str, str], tuple[Any, ...]] = {}


def reference(tmp_path_factory: pytest.TempPathFactory, objective: str, select: str) -> tuple[Any, ...]:
    key = (objective, select)
    if key not in _REFERENCES:
        study = make_study(tmp_path_factory.mktemp("ref"), objective, select)
        with study.store:
            result = asyncio.run(study.run())
            phases = {t.meta.get("phase") for t in study.store.trials("search")}
            assert {"pretest", "update"} <= phases, phases  # every phase happens (racing: not for `last`)
            assert bool(study.store.trials("race")) == (select != "last")
            assert study.store.trials()[0].errors == 1 and study.store.trials()[0].scored == 0
            points = {p: crash_point(p, study.store) for p in PHASES if p != "init"}
            _REFERENCES[key] = (outcome(study, result), points)
    return _REFERENCES[key]


@pytest.mark.parametrize(("phase", "objective", "select"), CASES)
def test_resume_in_any_phase_equals_the_uninterrupted_run(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory,
                                                          phase: str, objective: str, select: str) -> None:
    whole, points = reference(tmp_path_factory, objective, select)
    run = tmp_path / "run"
    seen: Counter[str] = Counter()

    def die(event: dict[str, Any]) -> None:
        if event["kind"] == "item":
            seen[event["label"]] += 1
            if (event["label"], seen[event["label"]]) == points[phase]:
                raise Crash()

    crashing = make_study(run, objective, select, die_on_agent_call=1 if phase == "init" else 0)
    with crashing.store, pytest.raises(Crash):
        asyncio.run(crashing.run(die if phase != "init" else None))
    with RunStore.open(run, readonly=True) as store:
        kept = store.trials()
        tested = store.test_results()
    assert (len(kept) == 0) if phase == "init" else (0 < len(kept) <= len(whole[0]))
    assert (len(kept) == len(whole[0])) == (phase == "test") and not tested
    if phase == "racing":
        races = [t for t in whole[0] if t[1] == "race"]
        assert len(races) >= 2 and [t.id for t in kept if t.kind == "race"] == [t[0] for t in races[:-1]]
    resumed = make_study(run, objective, select, resume=True)
    with resumed.store:
        assert outcome(resumed, asyncio.run(resumed.run())) == whole
