"""What a server is started with, checked before it binds a port.

Everything that can be wrong with the command line (a missing graph, a graph whose model is not
in the pool, a model without a binding, an API-key variable that is not set) fails here as one
`TtsGraphError`, before uvicorn starts, instead of as an error on every request.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from ttsgraph.config import BackendSettings, Sampling, pool_spec_of
from ttsgraph.cost import PAPER_LENGTHS, TaskLengths
from ttsgraph.errors import TtsGraphError
from ttsgraph.llm.router import check_bindings
from ttsgraph.models import ModelPool, load_pool
from ttsgraph.serve.graphs import ServedGraph, read_sources, serve_graphs

DEFAULT_LENGTHS = PAPER_LENGTHS["math"]
"""Task lengths (A, B) that price graphs when neither --task nor a served run gives them."""


@dataclass
class ServeOptions:
    """`ttsgraph serve`'s settings. `queue` = requests that may wait for one of the
    `max_concurrency` slots; `request_timeout` = seconds a request's graphs may run."""

    graphs: list[str]
    models: str | None = None
    task: str | None = None
    task_options: dict[str, Any] = field(default_factory=dict)
    api_key_env: str | None = None
    max_concurrency: int = 4
    queue: int = 16
    request_timeout: float = 300.0
    sampling: Sampling = field(default_factory=Sampling)
    backend: BackendSettings = field(default_factory=BackendSettings)


@dataclass
class Prepared:
    """The checked inputs of a server: pool, task (or None), pricing lengths, graphs, API key."""

    options: ServeOptions
    pool: ModelPool
    task: Any | None
    lengths: TaskLengths
    graphs: dict[str, ServedGraph]
    api_key: str | None

    @property
    def models(self) -> list[str]:
        """The pool models the served graphs call."""
        return sorted({m for g in self.graphs.values() for m in g.graph.models_used()})


def prepare(options: ServeOptions, *, check: bool = True) -> Prepared:
    """Load and check everything; `check=False` skips the binding check (tests' scripted backend)."""
    if options.max_concurrency < 1 or options.queue < 0 or options.request_timeout <= 0:
        raise TtsGraphError("--max-concurrency must be >= 1, --queue >= 0 and --request-timeout > 0")
    sources = read_sources(options.graphs)
    run = next((s.run_config for s in sources if s.run_config), None) or {}
    pool = load_pool(options.models or pool_spec_of(run))  # the run's optimizer's pool (method_pools)
    task = None
    if options.task:
        from ttsgraph.tasks import load_task

        task = load_task(options.task, **options.task_options)
    if task is not None:
        lengths = task.lengths
    elif run.get("lengths"):
        lengths = TaskLengths(*map(float, run["lengths"]))
    else:
        lengths = DEFAULT_LENGTHS
    graphs = serve_graphs(sources, pool, lengths)
    api_key = None
    if options.api_key_env:
        api_key = os.environ.get(options.api_key_env)
        if not api_key:
            raise TtsGraphError(f"--api-key-env: environment variable {options.api_key_env} is not set")
    prepared = Prepared(options, pool, task, lengths, graphs, api_key)
    if check:
        check_bindings(pool, prepared.models)
    return prepared
