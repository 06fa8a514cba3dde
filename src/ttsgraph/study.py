"""The study loop: any optimizer, one evaluation budget, every trial stored, resumable.

ask → score each proposal on the next items of a seeded stream over the task's *search* split (the
test split is never seen during search) → utility → tell → store the trial and the optimizer's
state. Every optimizer gets the same evaluation budget (iterations × batch items): the last ask is
trimmed so the total never exceeds it. A proposal over the FLOPs budget is repaired (the repair is
recorded in the trial's meta), never scored −1.

Resume: the store holds every scored trial and the optimizer's state after every tell. A resumed
study reloads the state (RNG included), re-asks the iteration that was in flight, reuses the
trials of that iteration already stored (so no evaluation is repeated or lost), and scores the
rest. Re-asked agent calls and re-run nodes come from the response cache, so a resumed run ends
exactly where the uninterrupted one would have.

At the end the selected graph (`best`, `last` or from the `pareto` front) is written to
`RUN/best_graph.json` and scored on the test split with a Wilson interval. Time is split into
evaluation time (executor wall time) and agent time (`optimizer.agent_seconds()`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ttsgraph import selection, study_paired
from ttsgraph.confirm import TOLERANCE
from ttsgraph.errors import TtsGraphError
from ttsgraph.evaluator import Evaluator, evaluate_one
from ttsgraph.executor import EvalSummary, ItemResult, summarize
from ttsgraph.graph import Graph
from ttsgraph.graph_io import save_graph
from ttsgraph.llm.base import SamplingParams
from ttsgraph.models import ModelPool
from ttsgraph.objective import OBJECTIVES, Objective
from ttsgraph.search.base import Evaluation, Optimizer, Proposal
from ttsgraph.search.role_rules import fix_roles
from ttsgraph.search.space import SearchSpace
from ttsgraph.item_stream import ItemStream
from ttsgraph.store import RunStore, TrialRecord

if TYPE_CHECKING:
    from ttsgraph.config import RunConfig
    from ttsgraph.runtime import Runtime

SELECTIONS = selection.RULES
Progress = Callable[[dict[str, Any]], None]


@dataclass
class StudyResult:
    """What a finished study found and what it cost. `evaluations` counts graph×item runs (search,
    racing, classical strategies and confirmation; `search_evaluations` the optimizer's alone),
    `backend_calls`/`cache_hits` the worker nodes' calls (agent calls not included)."""

    best: Evaluation
    best_trial: int
    test: EvalSummary | None
    evaluations: int
    backend_calls: int
    cache_hits: int
    eval_seconds: float
    agent_seconds: float
    trials: int
    run_dir: Path
    search_accuracy: float = 0.0
    search_items: int = 0
    search_errors: int = 0  # of the selected graph's search items, how many errored (counted as not correct)
    pareto: list[int] = field(default_factory=list)
    decision: dict[str, Any] = field(default_factory=dict)  # the stored `selection.Selection`
    search_evaluations: int = 0  # of `evaluations`, the optimizer's (search and race) ones

    def to_dict(self) -> dict[str, Any]:
        test = self.test
        return {
            "run_dir": str(self.run_dir),
            "best_graph": self.best.graph.to_dict(),
            "best_trial": self.best_trial,
            "graph_hash": self.best.graph.canonical_hash(),
            "search_accuracy": self.search_accuracy,
            "search_items": self.search_items,
            "search_errors": self.search_errors,
            "test_accuracy": test.accuracy if test else None,
            "test_ci": list(test.ci) if test else None,
            "test_items": test.items if test else 0,
            "test_errors": test.errors if test else 0,
            "test_latency": test.latency["critical_path"]["mean"] if test else None,
            "planned_units": self.best.planned_units,
            "evaluations": self.evaluations,
            "backend_calls": self.backend_calls,
            "cache_hits": self.cache_hits,
            "eval_seconds": self.eval_seconds,
            "agent_seconds": self.agent_seconds,
            "trials": self.trials,
            "pareto": self.pareto,
            "search_evaluations": self.search_evaluations,
            "selection_rule": self.decision.get("rule"),
            "confirmation": self.decision.get("confirm") or None,
            "vs_classical": self.decision.get("vs_classical") or None,
        }


def _calls(results: Sequence[ItemResult]) -> tuple[int, int]:
    nodes = [t for r in results for t in r.nodes]
    return sum(1 for t in nodes if t.called and not t.cached), sum(1 for t in nodes if t.cached)


@dataclass(frozen=True)
class StudySettings:
    """How a study spends and selects: the evaluation budget (iterations × batch items), the seed of
    the item stream, the objective and selection rule, racing, and the test size."""

    iterations: int
    batch: int
    seed: int = 0
    objective: str = "accuracy"
    latency_weight: float = 0.0
    select: str = "best"
    race: int = 0
    race_items: int | None = None
    test_limit: int | None = None
    classical: bool = False  # score the classical strategies first (`search.classical`): the incumbent
    confirm: int = 0  # > 0: paired items for every candidate, then this many finalists race (`confirm`)
    confirm_items: int = 20  # the confirmation size (at most the search split)
    confirm_tolerance: float = TOLERANCE  # how far below the most accurate finalist a cheaper one may be

    def __post_init__(self) -> None:
        Objective(self.objective)  # names an unknown objective
        if self.select not in SELECTIONS:
            raise TtsGraphError(f"unknown selection {self.select!r}; use one of {', '.join(SELECTIONS)}")
        if self.iterations < 1 or self.batch < 1:
            raise TtsGraphError(f"iterations and batch must be >= 1, got {self.iterations}, {self.batch}")
        if self.latency_weight < 0:
            raise TtsGraphError(f"latency weight must be >= 0, got {self.latency_weight}")
        if self.confirm < 0 or self.confirm_items < 1:
            raise TtsGraphError(f"confirm must be >= 0 and confirm items >= 1, "
                                f"got {self.confirm}, {self.confirm_items}")
        if self.race_items is None:
            object.__setattr__(self, "race_items", self.batch)


class Study:
    """Drives `optimizer` against an `Evaluator` (in-process or distributed); see the module docstring.

    `params` are the worker nodes' sampling settings (default: the space's temperature);
    `race` > 0 re-scores that many top candidates on `race_items` more search items each before
    choosing (stored as trials of kind "race", counted in `evaluations`); `test_limit` caps the
    test items (None: the whole test split, 0: no test).
    """

    def __init__(
        self,
        store: RunStore,
        task: Any,
        pool: ModelPool,
        space: SearchSpace,
        optimizer: Optimizer,
        evaluator: Evaluator,
        *,
        params: SamplingParams | None = None,
        **settings: Any,
    ) -> None:
        self.settings = StudySettings(**settings)
        self.store, self.task, self.pool, self.space = store, task, pool, space
        self.optimizer, self.evaluator = optimizer, evaluator
        self.params = params or SamplingParams(temperature=space.temperature)
        self.stream = ItemStream(task.items("search"), self.settings.seed)
        self.budget_items = self.settings.iterations * self.settings.batch
        self.objective = Objective(self.settings.objective, self.settings.latency_weight)
        self._progress: Progress | None = None
        self._t0 = time.perf_counter()
        self._calls = 0
        self._hits = 0
        self._eval_seconds = 0.0
        self._best_acc: float | None = None

    @classmethod
    def from_runtime(cls, rt: Runtime, store: RunStore, *, optimizer: Optimizer | None = None,
                     space: SearchSpace | None = None, seed: int | None = None,
                     config: RunConfig | None = None) -> Study:
        """The study a `RunConfig` (the runtime's, or `config`) describes, on the runtime's task,
        pool and evaluator (bench rows pass their own optimizer, seed and search settings)."""
        cfg = config or rt.config
        space = space or rt.space()
        seed = cfg.seed if seed is None else seed
        return cls(store, rt.task, rt.pool, space, optimizer or rt.optimizer(space, seed=seed), rt.evaluator,
                   iterations=cfg.iterations, batch=cfg.batch, seed=seed, objective=cfg.objective,
                   latency_weight=cfg.latency_weight, select=cfg.selection, params=rt.params, race=cfg.race,
                   race_items=cfg.race_items, test_limit=cfg.test_limit, classical=cfg.classical,
                   confirm=cfg.confirm, confirm_items=cfg.confirm_items,
                   confirm_tolerance=cfg.confirm_tolerance)

    # ----- helpers -------------------------------------------------------------------------
    def _emit(self, **event: Any) -> None:
        if self._progress is not None:
            event.setdefault("elapsed", time.perf_counter() - self._t0)
            event.setdefault("backend_calls", self._calls)
            event.setdefault("cache_hits", self._hits)
            event.setdefault("budget_units", self.space.budget.units)
            event.setdefault("budget_items", self.budget_items)
            self._progress(event)

    def _admit(self, proposal: Proposal) -> tuple[Graph, dict[str, Any]]:
        """The graph to score: roles fixed if needed, repaired to the budget (recorded)."""
        graph = proposal.graph
        graph.validate(models=set(self.pool.models))
        meta: dict[str, Any] = {}
        fixed = fix_roles(graph)
        if fixed is not graph:
            meta["roles_fixed"] = True
        if not self.space.fits(fixed) or fixed.pruned()[1]:
            before = self.space.units(fixed)
            fixed, removed = self.space.repair(fixed)
            if removed:
                meta["repaired"] = {"removed": removed, "units_before": before, "units_after": self.space.units(fixed)}
        out_model = fixed.node(fixed.output).model  # None: a vote output, which calls no model
        if self.space.output_model is not None and out_model is not None and out_model != self.space.output_model:
            raise TtsGraphError(f"optimizer {self.optimizer.name!r} proposed output model "
                                f"{fixed.node(fixed.output).model}, but the output is fixed to {self.space.output_model}")
        return fixed, meta

    def _evaluation(self, trial: int, graph: Graph, results: list[ItemResult], meta: dict[str, Any],
                    candidate: bool = True) -> Evaluation:
        scored = [r for r in results if r.error is None]
        correct = sum(1 for r in scored if r.correct)
        accuracy = correct / len(results) if results else 0.0  # an errored item is not correct (one accuracy)
        latency = sum(r.critical_path for r in scored) / len(scored) if scored else 0.0
        self.objective.observe(len(scored), latency)
        summary = summarize(results, graph, self.pool, self.task) if results else None
        measured = summary.measured_units if summary and summary.measured_units is not None else 0.0
        return Evaluation(
            trial=trial, graph=graph, accuracy=accuracy, utility=self.objective.utility(accuracy, latency),
            correct=correct, scored=len(scored), errors=len(results) - len(scored),
            item_ids=[r.item_id for r in results], planned_units=self.space.units(graph),
            measured_units=measured, latency=latency, meta=meta,
            feedback=[{"id": r.item_id, "correct": r.correct, "extracted": r.extracted, "error": r.error}
                      for r in results],
            candidate=candidate,
        )

    @staticmethod
    def _from_record(t: TrialRecord) -> Evaluation:
        meta = dict(t.meta)
        feedback = meta.pop("feedback", [])
        return Evaluation(trial=t.id, graph=t.graph, accuracy=t.accuracy, utility=t.utility, correct=t.correct,
                          scored=t.scored, errors=t.errors, item_ids=t.item_ids, planned_units=t.planned_units,
                          measured_units=t.measured_units or 0.0, latency=t.latency_mean or 0.0, meta=meta,
                          feedback=feedback, candidate=t.candidate)

    async def _score(self, graph: Graph, items: list[Any], label: str) -> tuple[list[ItemResult], float]:
        done = 0

        def on_result(r: ItemResult) -> None:
            nonlocal done
            done += 1
            calls, hits = _calls([r])
            self._calls += calls
            self._hits += hits
            self._emit(kind="item", label=label, done=done, total=len(items), correct=r.correct, error=r.error)

        started = time.perf_counter()
        results = await evaluate_one(self.evaluator, graph, items, params=self.params, on_result=on_result)
        return results, time.perf_counter() - started

    def _live_best(self) -> float | None:
        """What the live display calls "best": the pooled accuracy of the graph the selection would
        pick now (never a screening probe's 1/1), as `selection.best_so_far` draws it."""
        curve = selection.best_so_far(self.store.trials("search"))
        return curve[-1].accuracy if curve else None

    def _drain_agent(self) -> list[dict[str, Any]]:
        """The optimizer's agent exchanges since the last drain, as dicts for the store."""
        return [ex.to_dict() if hasattr(ex, "to_dict") else dict(ex) for ex in self.optimizer.drain_exchanges()]

    # ----- the loop ------------------------------------------------------------------------
    async def run(self, progress: Progress | None = None) -> StudyResult:
        self._progress = progress
        self._t0 = time.perf_counter()
        name = self.optimizer.name
        stored = self.store.trials("search")
        for t in self.store.trials():  # counters of what a previous process already did
            self._eval_seconds += t.eval_seconds
            self._calls += int(t.meta.get("study", {}).get("backend_calls", 0))
            self._hits += int(t.meta.get("study", {}).get("cache_hits", 0))
        self.objective = Objective.from_trials(self.settings.objective, self.settings.latency_weight,
                                               self.store.trials())  # as the live run had it
        saved = self.store.load_state()
        iteration = 0
        if saved is not None:
            iteration = saved[0] + 1
        done_before = [t for t in stored if t.iteration < iteration]
        if saved is not None:  # the state holds no history: the told evaluations come from the store
            self.optimizer.load_state_dict(saved[1], history=[self._from_record(t) for t in done_before])
        in_flight = {t.position: t for t in stored if t.iteration == iteration}
        if self.settings.classical:  # the incumbent, scored first on the items the candidates get
            self.optimizer.observe(await study_paired.run_classical(self))
        paired = self.settings.confirm > 0  # every proposal on the panel's first items (common items)
        cursor = sum(len(t.item_ids) for t in done_before)
        if done_before:
            self._best_acc = self._live_best()
            self._emit(kind="resume", iteration=iteration, trials=len(done_before), items_used=cursor)
        while cursor < self.budget_items:
            self._emit(kind="ask", iteration=iteration, items_used=cursor)
            proposals = await self.optimizer.ask()
            if not proposals:
                break
            evaluations: list[Evaluation] = []
            for position, proposal in enumerate(proposals):
                n = min(int(proposal.n_items), self.budget_items - cursor)
                if n <= 0:
                    break
                record = in_flight.get(position)
                if record is not None and len(record.item_ids) == n:
                    evaluation = self._from_record(record)  # scored before the interruption
                else:
                    graph, meta = self._admit(proposal)
                    items = self.stream.take(0 if paired else cursor, n)
                    results, seconds = await self._score(graph, items, f"iteration {iteration + 1}")
                    calls, hits = _calls(results)
                    meta = {**proposal.meta, **meta, "study": {"backend_calls": calls, "cache_hits": hits}}
                    evaluation = self._evaluation(0, graph, results, meta, candidate=proposal.candidate)
                    evaluation.trial = self.store.add_trial(evaluation, iteration=iteration, optimizer=name,
                                                            seed=self.settings.seed, results=results, position=position,
                                                            eval_seconds=seconds)
                    self._eval_seconds += seconds
                cursor += n
                evaluations.append(evaluation)
                self._best_acc = self._live_best()
                self._emit(kind="trial", iteration=iteration, position=position, accuracy=evaluation.accuracy,
                           utility=evaluation.utility, best_accuracy=self._best_acc,
                           planned_units=evaluation.planned_units, errors=evaluation.errors, items_used=cursor,
                           graph_hash=evaluation.graph.canonical_hash(), nodes=len(evaluation.graph.nodes),
                           repaired=bool(evaluation.meta.get("repaired")))
            in_flight = {}
            self.optimizer.tell(evaluations)
            self.store.save_iteration(iteration, self.optimizer.state_dict(), self._drain_agent())
            iteration += 1
        return await self._finish()

    # ----- selection and the final test ------------------------------------------------------
    def _score_of(self, g: selection.GraphScore) -> float:
        """The objective's utility of a pooled graph (what `selection.rank` orders by)."""
        return self.objective.utility(g.accuracy, g.latency)

    async def _race(self, cands: list[selection.GraphScore]) -> None:
        """Re-score the top `race` candidates on fresh search items (stored as kind "race")."""
        done = {(t.iteration, t.position) for t in self.store.trials("race")}
        cursor = sum(len(t.item_ids) for t in self.store.trials())
        top = selection.rank(cands, self._score_of)[: self.settings.race]
        for k, c in enumerate(top):
            if (0, k) in done:
                continue
            items = self.stream.take(cursor, self.settings.race_items)
            results, seconds = await self._score(c.graph, items, f"racing {k + 1}/{len(top)}")
            calls, hits = _calls(results)
            ev = self._evaluation(0, c.graph, results, {"race_of": c.trial,
                                                        "study": {"backend_calls": calls, "cache_hits": hits}})
            self.store.add_trial(ev, iteration=0, optimizer=self.optimizer.name, seed=self.settings.seed, results=results,
                                 position=k, kind="race", eval_seconds=seconds)
            self._eval_seconds += seconds
            cursor += len(items)

    async def _finish(self) -> StudyResult:
        """Race if asked, let `ttsgraph.selection` choose, record the decision in the store (config
        `selection`, which the report reads), write best_graph.json, score the test split."""
        search = self.store.trials("search")
        if not search:
            raise TtsGraphError("the study scored no trial: nothing to select")
        if self.settings.race > 0 and self.settings.select != "last":
            await self._race(selection.candidates(search))
        if self.settings.confirm > 0 and self.settings.select == "best":
            chosen = await study_paired.run_confirmation(self)
        else:
            chosen = selection.choose(self.store.trials(), self.settings.select, self._score_of)
        self.store.set_config(selection.CONFIG_KEY, chosen.to_dict())
        record = self.store.trial(chosen.trial)
        best = self._from_record(record)
        best.accuracy = chosen.accuracy
        run_dir = self.store.path
        save_graph(record.graph, run_dir / "best_graph.json",
                   extra={"search_accuracy": chosen.accuracy, "trial": chosen.trial,
                          "optimizer": self.optimizer.name, "task": self.task.name,
                          "budget_units": self.space.budget.units})
        test, test_results = await self._test(record.graph)
        if chosen.vs_classical:
            await study_paired.test_vs_classical(self, chosen, test_results)
            self.store.set_config(selection.CONFIG_KEY, chosen.to_dict())
        all_trials = self.store.trials()
        self._emit(kind="done", best_accuracy=chosen.accuracy, test_accuracy=test.accuracy if test else None)
        return StudyResult(
            best=best, best_trial=chosen.trial, test=test,
            evaluations=sum(len(t.item_ids) for t in all_trials),
            backend_calls=self._calls, cache_hits=self._hits, eval_seconds=self._eval_seconds,
            agent_seconds=float(self.optimizer.agent_seconds()), trials=len(search), run_dir=run_dir,
            search_accuracy=chosen.accuracy, search_items=chosen.items, search_errors=chosen.errors,
            pareto=chosen.pareto, decision=chosen.to_dict(),
            search_evaluations=sum(len(t.item_ids) for t in all_trials if t.kind in ("search", "race")),
        )

    def _test_items(self) -> list[Any]:
        if self.settings.test_limit == 0:
            return []
        items = self.task.items("test")
        return items[: self.settings.test_limit] if self.settings.test_limit is not None else items

    async def _test(self, graph: Graph) -> tuple[EvalSummary | None, list[ItemResult]]:
        items = self._test_items()
        if not items:
            return None, []
        results, seconds = await self._score(graph, items, "test")
        calls, hits = _calls(results)
        summary = summarize(results, graph, self.pool, self.task)
        self.store.set_test_result(graph.canonical_hash(), "test",
                                   {**summary.to_dict(), "limit": self.settings.test_limit, "seconds": seconds})
        self._emit(kind="test", accuracy=summary.accuracy, ci=list(summary.ci), seconds=seconds,
                   test_calls=calls, test_hits=hits)
        return summary, results


__all__ = ["Study", "StudyResult", "ItemStream", "OBJECTIVES", "SELECTIONS"]
