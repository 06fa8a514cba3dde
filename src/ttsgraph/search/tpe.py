"""Bayesian optimization with Optuna's TPE sampler (SPEC §7 `BOSwarm`).

The model mix is drawn once at random from the budget-filling combos and placed on worker slots
at random (as the released code does); TPE then searches one binary variable per potential edge
(slot i → slot j for i < j, so every assignment is acyclic, and slot → output) and one binary role
per worker. Each ask is one trial scored on one batch of items.

Resuming must give exactly what an uninterrupted run gives, but an Optuna sampler's internal RNG
cannot be saved. So each ask builds a fresh in-memory study from the stored trials with a sampler
seeded from (seed, number of trials): the proposal is a pure function of the seed and the
history, which is exactly what the state holds.
"""

from __future__ import annotations

import logging
from typing import Any

from ttsgraph.errors import TtsGraphError
from ttsgraph.graph import Graph, Node
from ttsgraph.search.base import Evaluation, Optimizer, Proposal, register
from ttsgraph.search.space import fix_roles

OUT = "out"


@register
class TPE(Optimizer):
    """`tpe`: options `n_startup` (random trials before TPE models the history; default 3),
    `multivariate` (False)."""

    name = "tpe"

    def __init__(self, space: Any, *, seed: int = 0, iterations: int = 10, batch: int = 3, **options: Any) -> None:
        super().__init__(space, seed=seed, iterations=iterations, batch=batch, **options)
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        logging.getLogger("optuna").setLevel(logging.WARNING)
        self.n_startup = int(options.get("n_startup", 3))
        self.multivariate = bool(options.get("multivariate", False))
        if self.n_startup < 0:
            raise TtsGraphError(f"tpe: n_startup must be >= 0, got {self.n_startup}")
        combos = space.combos()
        if not combos:
            raise TtsGraphError("tpe: the budget admits no model mix")
        counts = combos[int(self.rng.integers(len(combos)))]
        models = [m for m, k in sorted(counts.items()) for _ in range(int(k))]
        self.models = [models[int(i)] for i in self.rng.permutation(len(models))]
        pool_models = list(space.pool.models)
        self.output_model = space.output_model or pool_models[int(self.rng.integers(len(pool_models)))]
        self.counts = dict(counts)
        self.trials: list[dict[str, Any]] = []  # {"params": {...}, "value": float}
        self._pending: list[dict[str, int]] = []

    # ---- the search variables ------------------------------------------------------------
    def _variables(self) -> list[str]:
        n = len(self.models)
        names = [f"e{i + 1}_{j + 1}" for i in range(n) for j in range(i + 1, n)]
        names += [f"e{i + 1}_out" for i in range(n)]
        names += [f"r{i + 1}" for i in range(n)]
        return names

    def _graph(self, params: dict[str, int]) -> Graph:
        n = len(self.models)
        ids = [f"n{i + 1}" for i in range(n)]
        edges = [(ids[i], ids[j]) for i in range(n) for j in range(i + 1, n) if params[f"e{i + 1}_{j + 1}"]]
        edges += [(ids[i], OUT) for i in range(n) if params[f"e{i + 1}_out"]]
        has_succ = {u for u, _ in edges}
        edges += [(ids[i], OUT) for i in range(n) if ids[i] not in has_succ]  # no dangling worker
        nodes = [Node(ids[i], self.models[i], "fuser" if params[f"r{i + 1}"] else "assistant") for i in range(n)]
        graph = fix_roles(Graph(nodes + [Node(OUT, self.output_model)], edges, OUT))
        return self.space.repair(graph)[0]

    def _suggest(self) -> dict[str, int]:
        import optuna
        from optuna.distributions import CategoricalDistribution

        sampler = optuna.samplers.TPESampler(
            seed=(self.seed * 1_000_003 + len(self.trials)) % (2**32), n_startup_trials=self.n_startup,
            multivariate=self.multivariate,
        )
        study = optuna.create_study(direction="maximize", sampler=sampler)
        dist = CategoricalDistribution([0, 1])
        names = self._variables()
        for t in self.trials:
            study.add_trial(optuna.trial.create_trial(params=t["params"], distributions={k: dist for k in names},
                                                      value=float(t["value"])))
        trial = study.ask()
        return {k: int(trial.suggest_categorical(k, [0, 1])) for k in names}

    # ---- ask/tell -------------------------------------------------------------------------
    async def ask(self) -> list[Proposal]:
        params = self._suggest()
        self._pending = [params]
        return [Proposal(self._graph(params), self.batch, {"counts": self.counts, "trial": len(self.trials)})]

    def tell(self, evaluations: list[Evaluation]) -> None:
        super().tell(evaluations)
        for params, e in zip(self._pending, evaluations):
            if e.scored > 0:  # an all-errors trial says nothing about the parameters
                self.trials.append({"params": params, "value": float(e.utility)})
        self._pending = []

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state.update({"trials": self.trials, "models": self.models, "output_model": self.output_model,
                      "counts": self.counts})
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.trials = list(state.get("trials", []))
        self.models = list(state["models"])
        self.output_model = state["output_model"]
        self.counts = dict(state["counts"])
        self._pending = []
