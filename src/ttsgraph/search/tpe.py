"""Bayesian optimization with Optuna's TPE sampler (SPEC §7 `BOSwarm`).

The model mix is drawn once at random from the combos (under-filled too unless `budget_filling`)
and placed on worker slots at random (as the released code does); TPE then searches one binary
variable per potential edge (slot i → slot j for i < j, so every assignment is acyclic, and slot →
output), one binary role per worker and whether the output is a vote (`out_vote`). Each ask is one trial scored on one batch of items.

Resuming must give exactly what an uninterrupted run gives, but an Optuna sampler's internal RNG
cannot be saved. So each ask builds a fresh in-memory study from the trials told so far with a
sampler seeded from (seed, number of trials): the proposal is a pure function of the seed and the
history. The history is not part of the state (it would grow every iteration): each proposal
carries its variables in its meta (`params`), the study stores that meta with the trial, and
`load_state_dict` rebuilds the trials from the evaluations the study hands back.

A trial where every item errored is told to TPE as FAILED (Optuna's own state for it): TPE does
not model its value, but it counts, so the next sampler seed differs. Dropping it instead left
the seed and the history unchanged, and the same graph came back on every ask.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pydantic import Field

from ttsgraph.errors import TtsGraphError
from ttsgraph.graph import Graph, Node
from ttsgraph.search.base import Evaluation, Optimizer, MixOptions, Proposal, register
from ttsgraph.search.role_rules import fix_roles
from ttsgraph.search.space import OUTPUT_ID as OUT

if TYPE_CHECKING:
    from ttsgraph.search.space import SearchSpace


VOTE_VARIABLE = "out_vote"
"""1: the output node is a vote (a majority over its predecessors, no model) instead of a model call."""

@register
class TPE(Optimizer):
    """`tpe`: one fixed mix and placement; TPE searches the edges and roles."""

    class Options(MixOptions):
        n_startup: int = Field(3, ge=0, description="random trials before TPE models the history")
        multivariate: bool = Field(False, description="Optuna's multivariate TPE")

    name = "tpe"
    opts: Options

    def __init__(self, space: SearchSpace, **kwargs: Any) -> None:  # seed, iterations, batch, context, options
        super().__init__(space, **kwargs)
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        logging.getLogger("optuna").setLevel(logging.WARNING)
        combos = space.combos(self.opts.budget_filling)
        if not combos:
            raise TtsGraphError("tpe: the budget admits no model mix")
        counts = combos[int(self.rng.integers(len(combos)))]
        models = [m for m, k in sorted(counts.items()) for _ in range(int(k))]
        self.models = [models[int(i)] for i in self.rng.permutation(len(models))]
        pool_models = list(space.pool.models)
        self.output_model = space.output_model or pool_models[int(self.rng.integers(len(pool_models)))]
        self.counts = dict(counts)
        self.trials: list[dict[str, Any]] = []  # {"params": {...}, "value": float | None (failed)}
        self._pending: list[dict[str, int]] = []

    # ---- the search variables ------------------------------------------------------------
    def _variables(self) -> list[str]:
        n = len(self.models)
        names = [f"e{i + 1}_{j + 1}" for i in range(n) for j in range(i + 1, n)]
        names += [f"e{i + 1}_out" for i in range(n)]
        names += [f"r{i + 1}" for i in range(n)]
        return names + [VOTE_VARIABLE]

    def _graph(self, params: dict[str, int]) -> Graph:
        n = len(self.models)
        ids = [f"n{i + 1}" for i in range(n)]
        edges = [(ids[i], ids[j]) for i in range(n) for j in range(i + 1, n) if params[f"e{i + 1}_{j + 1}"]]
        edges += [(ids[i], OUT) for i in range(n) if params[f"e{i + 1}_out"]]
        has_succ = {u for u, _ in edges}
        edges += [(ids[i], OUT) for i in range(n) if ids[i] not in has_succ]  # no dangling worker
        nodes = [Node(ids[i], self.models[i], "fuser" if params[f"r{i + 1}"] else "assistant") for i in range(n)]
        out = Node(OUT, None, "vote") if params.get(VOTE_VARIABLE) else Node(OUT, self.output_model)
        graph = fix_roles(Graph(nodes + [out], edges, OUT))
        return self.space.repair(graph)[0]

    def _suggest(self) -> dict[str, int]:
        import optuna
        from optuna.distributions import CategoricalDistribution

        sampler = optuna.samplers.TPESampler(
            seed=(self.seed * 1_000_003 + len(self.trials)) % (2**32), n_startup_trials=self.opts.n_startup,
            multivariate=self.opts.multivariate,
        )
        study = optuna.create_study(direction="maximize", sampler=sampler)
        dist = CategoricalDistribution([0, 1])
        names = self._variables()
        failed = optuna.trial.TrialState.FAIL
        for t in self.trials:
            value = t["value"]
            study.add_trial(optuna.trial.create_trial(
                params=t["params"], distributions={k: dist for k in names},
                value=None if value is None else float(value),
                state=failed if value is None else optuna.trial.TrialState.COMPLETE))
        trial = study.ask()
        return {k: int(trial.suggest_categorical(k, [0, 1])) for k in names}

    # ---- ask/tell -------------------------------------------------------------------------
    async def ask(self) -> list[Proposal]:
        params = self._suggest()
        self._pending = [params]
        meta = {"counts": self.counts, "trial": len(self.trials), "params": params}
        return [Proposal(self._graph(params), self.batch, meta)]

    def tell(self, evaluations: list[Evaluation]) -> None:
        super().tell(evaluations)
        for params, e in zip(self._pending, evaluations):
            self._learn(params, e)
        self._pending = []

    def _learn(self, params: dict[str, int], e: Evaluation) -> None:
        # an all-errors trial says nothing about the value, only that these parameters failed
        self.trials.append({"params": params, "value": float(e.utility) if e.scored > 0 else None})

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state.update({"models": self.models, "output_model": self.output_model, "counts": self.counts})
        return state

    def load_state_dict(self, state: dict[str, Any], history: Sequence[Evaluation] = ()) -> None:
        super().load_state_dict(state, history)
        self.models = list(state["models"])
        self.output_model = state["output_model"]
        self.counts = dict(state["counts"])
        self.trials = []
        for e in self.history:
            if "params" not in e.meta:
                raise TtsGraphError(f"tpe: trial {e.trial} has no 'params' in its meta, so it cannot be resumed")
            self._learn({VOTE_VARIABLE: 0, **e.meta["params"]}, e)  # trials from before votes: no vote
        self._pending = []
