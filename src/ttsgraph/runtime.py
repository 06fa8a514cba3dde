"""From a `RunConfig` to the live objects a run works with — built in one place for every command.

`search`, `eval`, `profile` and `bench` each used to load the pool, the task, the bindings, the
backend, the cache and the executor by hand, and each did it a little differently. `build_runtime`
does it once: an async context manager (the backend's HTTP clients, loaded models and cache file are
closed on exit) giving the pool, the task (with its lengths pinned when the config says so), the
routed and cached backend and the evaluator; `Runtime.space()` and `Runtime.optimizer()` add what a
search needs.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from ttsgraph.config import RunConfig
from ttsgraph.cost import Budget, TaskLengths, units_budget
from ttsgraph.errors import BudgetError, TtsGraphError
from ttsgraph.evaluator import Evaluator, LocalEvaluator
from ttsgraph.llm.base import Backend, SamplingParams
from ttsgraph.llm.router import build_backend, check_bindings
from ttsgraph.models import ModelPool, load_pool
from ttsgraph.search.base import Optimizer, SearchContext, get_optimizer
from ttsgraph.search.space import SearchSpace
from ttsgraph.search.unit_costs import paper_unit_costs


@dataclass
class Runtime:
    """What a run works with. `evaluator` runs and grades graph × item jobs over `backend`."""

    config: RunConfig
    pool: ModelPool
    task: Any
    backend: Backend
    evaluator: Evaluator

    @property
    def params(self) -> SamplingParams:
        """The worker nodes' sampling settings."""
        return self.config.sampling.params()

    def budget(self) -> Budget:
        spec = self.config.budget
        if spec is None:
            raise BudgetError("this command needs a budget: give --budget (units) or --budget-nodes (b)")
        if spec.nodes is not None:
            return Budget.from_nodes(spec.nodes, self.pool, self.task.lengths)
        return units_budget(float(spec.units or 0.0), self.pool, self.task.lengths)

    def space(self) -> SearchSpace:
        """The search space: the pool under the budget, the output model fixed unless 'searched'."""
        output = self.config.output_model or self.pool.output
        if output != "searched" and output not in self.pool.specs:
            raise TtsGraphError(f"--output-model: {output!r} is not in the pool ({', '.join(self.pool.models)})")
        return SearchSpace(self.pool, self.task.lengths, self.budget(),
                           output_model=None if output == "searched" else output,
                           temperature=self.config.sampling.temperature,
                           unit_costs=paper_unit_costs(self.pool.models, self.task.name))

    def profile(self) -> Any:
        """The profile Agent-REINFORCE's initialization reads: `--profile FILE`, else the newest stored
        match for this task and pool, else the paper's table when it applies, else None."""
        from ttsgraph.profile import find_profile, load_profile

        if self.config.profile:
            return load_profile(self.config.profile)
        return find_profile(self.task, self.pool)

    def record_settings(self, store: Any, space: SearchSpace, *, created: bool) -> None:
        """Write what a study runs with into its store: the resolved config with the task lengths
        pinned (on resume: the continued settings, e.g. more iterations), the cache path, and on
        creation the space, the pool and the command line, so a run directory says what it ran."""
        pinned = self.config.model_copy(update={"lengths": (self.task.lengths.prompt, self.task.lengths.answer)})
        store.set_config("run", pinned.to_json())
        if created:
            store.set_config("space", space.describe())
            store.set_config("pool", self.pool.to_dict())
            store.set_config("command", sys.argv[1:])
        cache_path = self.config.backend.cache_path()
        store.set_config("cache", str(cache_path) if cache_path else None)

    def optimizer(self, space: SearchSpace, *, name: str | None = None, options: dict[str, Any] | None = None,
                  seed: int | None = None) -> Optimizer:
        """The configured optimizer (or `name` with `options`, for bench rows) over `space`."""
        name = name or self.config.optimizer.name
        cls = get_optimizer(name)
        opts = dict(self.config.optimizer.options if options is None else options)
        context = SearchContext(backend=self.backend, task=self.task, objective=self.config.objective,
                                profile=self.profile() if cls.reads_profile else None)
        return cls(space, seed=self.config.seed if seed is None else seed, iterations=self.config.iterations,
                   batch=self.config.batch, context=context, **opts)


def pinned_task(config: RunConfig) -> Any:
    """The configured task; a run's stored lengths (A, B) override the task's own, so a resumed run
    keeps what its budget meant when it was created."""
    from ttsgraph.tasks import load_task

    task = load_task(config.task, **config.task_options)
    if config.lengths is not None:
        task.lengths = TaskLengths(*map(float, config.lengths))
    return task


@contextlib.asynccontextmanager
async def build_runtime(config: RunConfig, *, models: Sequence[str] | None = None,
                        fake_backend: Backend | None = None,
                        evaluator: Evaluator | None = None) -> AsyncIterator[Runtime]:
    """Build the runtime for `config` and close its backend on exit.

    `models` limits the binding check to the models a command will call (default: the whole
    pool), so `eval` of a one-model graph does not need every binding. `fake_backend` (unit tests
    only) replaces every binding. `evaluator` replaces the local evaluator. With `executor = "ray"`
    the backend sends cache misses to Ray actors (`ttsgraph.distributed`); the evaluator is the
    local one over it, so jobs are walked, cached and graded here exactly as in a local run."""
    pool = load_pool(config.pool_spec)
    task = pinned_task(config)
    if fake_backend is None:
        check_bindings(pool, list(models) if models is not None else None)
    settings = config.backend
    concurrency = settings.concurrency
    if config.executor == "ray" and fake_backend is None:
        backend, actors = await _ray_backend(config, pool)
        concurrency *= actors  # `--concurrency` is per actor: the driver keeps them all busy
    else:
        backend = build_backend(pool, settings.cache_path(), fake_backend, timeout=settings.timeout,
                                retries=settings.retries)
    async with backend:
        yield Runtime(config=config, pool=pool, task=task, backend=backend,
                      evaluator=evaluator or LocalEvaluator(backend, pool, task, params=config.sampling.params(),
                                                            concurrency=concurrency))


async def _ray_backend(config: RunConfig, pool: ModelPool) -> tuple[Backend, int]:
    """Model calls on Ray actors, behind the driver's own response cache (so hits never leave the
    driver and only the driver writes the cache); returns the backend and the actor count.

    The cache is the one `build_backend` makes for a local run — same keys, binding identities
    included — with its inner backend swapped for the actors: a local run and a Ray run of one
    config read and write the same entries. (The local backends it built load nothing until called.)"""
    from ttsgraph.distributed.ray_backend import RayBackend
    from ttsgraph.llm.cache import CachedBackend

    settings = config.backend
    local = build_backend(pool, settings.cache_path(), timeout=settings.timeout, retries=settings.retries)
    try:
        ray = RayBackend(pool, address=config.ray_address, actors=config.ray_actors,
                         concurrency=settings.concurrency, timeout=settings.timeout, retries=settings.retries)
    except BaseException:
        await local.aclose()
        raise
    try:
        await ray.start()
    except BaseException:
        await ray.aclose()
        await local.aclose()
        raise
    if not isinstance(local, CachedBackend):
        await local.aclose()
        return ray, ray.actors
    await local.inner.aclose()
    local.inner = ray
    return local, ray.actors


__all__ = ["Runtime", "build_runtime", "pinned_task"]
