"""One typed configuration for every run: search, bench, eval, profile (and, next, serve).

Before this module a run was assembled by hand in four places from untyped dicts, so a flag could
mean one thing to `search` and another to `bench`, a misspelled option was silently dropped and a
resumed run quietly ignored most flags. Now a run is a `RunConfig` (pydantic): loadable from a TOML
recipe, overridden by flags, validated once with errors that name the field (and the recipe line),
stored in the run directory, and compared field by field on resume (`resume_config`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ttsgraph.errors import FileFormatError, TtsGraphError
from ttsgraph.inputs import load_toml, read_text_file
from ttsgraph.llm.base import SamplingParams

Objective = Literal["accuracy", "accuracy-latency"]
Selection = Literal["best", "last", "pareto"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class Sampling(_Model):
    """The worker nodes' sampling settings (every node of a graph gets them)."""

    temperature: float = Field(0.1, ge=0.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    max_tokens: int = Field(256, ge=1)
    output_max_tokens: int | None = Field(None, ge=1)  # the output node's own cap (None: max_tokens)
    stop: tuple[str, ...] = ()

    def params(self) -> SamplingParams:
        return SamplingParams(temperature=self.temperature, top_p=self.top_p, max_tokens=self.max_tokens,
                              stop=self.stop, output_max_tokens=self.output_max_tokens)


class BackendSettings(_Model):
    """How models are called: the response cache, HTTP timeout and retries, concurrency per backend."""

    cache: str | None = None  # a file; None = the default cache (`ttsgraph.llm.cache.default_cache_path`)
    no_cache: bool = False
    timeout: float = Field(600.0, gt=0.0)
    retries: int = Field(3, ge=0)
    concurrency: int = Field(4, ge=1)

    def cache_path(self) -> Path | None:
        if self.no_cache:
            return None
        from ttsgraph.llm.cache import default_cache_path

        return Path(self.cache).expanduser().resolve() if self.cache else default_cache_path()


class BudgetSpec(_Model):
    """The FLOPs budget per query: in normalized units, or as the paper's node count b."""

    units: float | None = Field(None, gt=0.0)
    nodes: int | None = Field(None, ge=1)

    @model_validator(mode="after")
    def _one(self) -> BudgetSpec:
        if (self.units is None) == (self.nodes is None):
            raise ValueError("give exactly one of budget units (--budget) or nodes (--budget-nodes)")
        return self

    def label(self) -> str:
        return f"b{self.nodes}" if self.nodes is not None else f"u{self.units:g}"


class OptimizerSpec(_Model):
    """An optimizer by name and its options (validated against that optimizer's typed `Options`)."""

    name: str = "agent-reinforce"
    options: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _known(self) -> OptimizerSpec:
        from ttsgraph.search.base import get_optimizer

        try:
            cls = get_optimizer(self.name)
            cls.Options.parse(self.name, self.options)
        except TtsGraphError as exc:
            raise ValueError(str(exc)) from None
        return self


class RunConfig(_Model):
    """Everything a run needs. Defaults here are the only defaults: flags and recipes override them."""

    task: str
    task_options: dict[str, Any] = Field(default_factory=dict)
    models: str | None = None  # pool name (local, paper, paper-full) or a models.toml path
    method_pools: dict[str, str] = Field(default_factory=dict)  # optimizer name -> its own pool (SPEC §7)
    budget: BudgetSpec | None = None
    optimizer: OptimizerSpec = Field(default_factory=OptimizerSpec)
    profile: str | None = None  # a profile file for Agent-REINFORCE (default: the newest stored match)
    objective: Objective = "accuracy"
    latency_weight: float = Field(0.0, ge=0.0)
    select: Selection | None = None  # None: best, or pareto with the accuracy-latency objective
    iterations: int = Field(10, ge=1)
    batch: int = Field(3, ge=1)
    seed: int = 0
    race: int = Field(0, ge=0)
    race_items: int | None = Field(None, ge=1)
    test_limit: int | None = Field(None, ge=0)
    classical: bool = True  # score the classical strategies that fit first: the incumbent (--no-classical)
    confirm: int = Field(4, ge=0)  # finalists of the paired confirmation (0: off, candidates on fresh items)
    confirm_items: int = Field(20, ge=1)  # search items the finalists are confirmed on (at most the split)
    confirm_tolerance: float = Field(0.02, ge=0.0, le=1.0)  # how far a cheaper finalist may trail the best
    output_model: str | None = None  # None: the pool's output model; "searched": the search picks it
    sampling: Sampling = Field(default_factory=Sampling)
    backend: BackendSettings = Field(default_factory=BackendSettings)
    lengths: tuple[float, float] | None = None  # the task's (A, B), pinned when a run is created
    executor: Literal["local", "ray"] = "local"  # where model calls run (docs/distributed.md)
    ray_address: str | None = None  # "auto", HOST:PORT; None: $RAY_ADDRESS, else a new local Ray
    ray_actors: int | None = Field(None, ge=1)  # None: one actor per alive Ray node

    @model_validator(mode="after")
    def _known_methods(self) -> RunConfig:
        from ttsgraph.search.base import get_optimizer

        for name in self.method_pools:
            try:
                get_optimizer(name)
            except TtsGraphError as exc:
                raise ValueError(f"method_pools: {exc}") from None
        return self

    @property
    def pool_spec(self) -> str | None:
        """The pool this run's optimizer works with: its `method_pools` entry, else `models`. The
        paper offered Agent-REINFORCE the Llama models only and its baselines Llama + Gemma."""
        return pool_spec_of(self.to_json())

    @property
    def selection(self) -> Selection:
        if self.select is not None:
            return self.select
        # With a joint objective the most accurate graph may be dominated by an equally accurate,
        # faster one: choose on the Pareto front unless told otherwise.
        return "pareto" if self.objective == "accuracy-latency" else "best"

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def pool_spec_of(run: dict[str, Any]) -> str | None:
    """`RunConfig.pool_spec` of a stored run's config (JSON): what a served or reported run's graphs
    were searched over."""
    optimizer = (run.get("optimizer") or {}).get("name", OptimizerSpec.model_fields["name"].default)
    return (run.get("method_pools") or {}).get(optimizer, run.get("models"))


# ----- building a config from a recipe and flags -----------------------------------------------

def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """`over` on top of `base`, recursively for tables (flags on top of a recipe)."""
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_recipe(path: str | Path) -> dict[str, Any]:
    """A TOML recipe as a dict (validated later, with the flags merged in)."""
    path = Path(path)
    data = load_toml(read_text_file(path, "recipe"), path, "recipe")
    base = path.parent
    if isinstance(data.get("models"), str) and data["models"].endswith(".toml") and "\0" not in data["models"]:
        candidate = (base / data["models"]).resolve()  # a pool file next to the recipe
        if candidate.exists():
            data["models"] = str(candidate)
    pools = data.get("method_pools")
    if isinstance(pools, dict):
        for name, spec in pools.items():
            if isinstance(spec, str) and spec.endswith(".toml") and (base / spec).exists():
                pools[name] = str((base / spec).resolve())
    return data


def _line_of(text: str, loc: tuple[Any, ...]) -> int | None:
    """The recipe line that sets the field at `loc` (best effort: the key's first assignment)."""
    if not loc:
        return None
    key = str(loc[-1]) if not isinstance(loc[-1], int) else str(loc[-2]) if len(loc) > 1 else ""
    for no, line in enumerate(text.splitlines(), 1):
        if re.match(rf"\s*{re.escape(key)}\s*=", line):
            return no
    return None


def make_config(data: dict[str, Any], *, recipe: str | Path | None = None,
                flags: dict[str, Any] | None = None) -> RunConfig:
    """Validate `data`; a bad field is one `TtsGraphError` naming it: the recipe's file:line when the
    recipe set that field, else the flag that sets it."""
    try:
        return RunConfig.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(err.get("loc", ()))
        where = ".".join(str(x) for x in loc) or "config"
        msg = str(err.get("msg", exc)).removeprefix("Value error, ")
        from_flag = flags is not None and any(where == p or where.startswith(p + ".") or p.startswith(where)
                                              for p in _flatten(flags))
        if recipe is not None and not from_flag:
            text = read_text_file(recipe, "recipe")
            raise FileFormatError(f"field {where!r}: {msg}", path=str(recipe), line=_line_of(text, loc)) from None
        if where == "optimizer":  # the optimizer's own check names the optimizer and the option
            where = "optimizer.options" if "option" in msg else "optimizer.name"
        raise TtsGraphError(f"{FLAGS.get(where, where)}: {msg}") from None


def from_sources(recipe: str | Path | None, flags: dict[str, Any]) -> RunConfig:
    """The config of a new run: the recipe (if any), then the flags that were given on top."""
    base = load_recipe(recipe) if recipe is not None else {}
    return make_config(deep_merge(base, flags), recipe=recipe, flags=flags)


# ----- resume: continue what can be continued, refuse what cannot --------------------------------

FLAGS: dict[str, str] = {
    "task": "--task", "task_options": "--option", "models": "--models", "method_pools": "method_pools (recipe)", "budget.units": "--budget",
    "budget.nodes": "--budget-nodes", "optimizer.name": "--optimizer", "optimizer.options": "--opt",
    "profile": "--profile", "objective": "--objective", "latency_weight": "--latency-weight",
    "select": "--select", "iterations": "--iterations", "batch": "--batch", "seed": "--seed", "race": "--race",
    "race_items": "--race-items", "classical": "--no-classical", "confirm": "--confirm",
    "confirm_items": "--confirm-items", "confirm_tolerance": "--confirm-tolerance", "test_limit": "--test-limit", "output_model": "--output-model",
    "sampling.temperature": "--temperature", "sampling.top_p": "--top-p", "sampling.max_tokens": "--max-tokens",
    "sampling.output_max_tokens": "--output-max-tokens",
    "sampling.stop": "--stop", "backend.cache": "--cache", "backend.no_cache": "--no-cache",
    "backend.timeout": "--timeout", "backend.retries": "--retries", "backend.concurrency": "--concurrency",
    "executor": "--executor", "ray_address": "--ray-address", "ray_actors": "--ray-actors",
}
"""Config field → the flag that sets it, for messages."""

CONTINUABLE = {"iterations", "test_limit", "backend.cache", "backend.no_cache", "backend.timeout",
               "backend.retries", "backend.concurrency", "executor", "ray_address", "ray_actors"}
"""Fields a resumed run may change: more iterations, another test size, how backends are called
and where (a run started locally may go on on a cluster: the results do not depend on it).
Everything else decides what the stored trials mean, so changing it would mix two studies."""


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and key not in ("task_options", "options"):
            flat.update(_flatten(value, path + "."))
        else:
            flat[path] = value
    return flat


def resume_config(stored: RunConfig, given: dict[str, Any]) -> RunConfig:
    """The config a resumed run continues with: `stored` plus the continuable fields in `given`
    (the flags given on the command line, as a nested dict). A flag that would change anything
    else, or fewer iterations than stored, is refused with one line naming it and both values."""
    old = _flatten(stored.to_json())
    merged = make_config(deep_merge(stored.to_json(), given), flags=given)
    new_flat = _flatten(merged.to_json())
    for path in sorted(_flatten(given)):
        before, after = old.get(path), new_flat.get(path)
        if before == after:
            continue
        flag = FLAGS.get(path, path)
        if path not in CONTINUABLE:
            raise TtsGraphError(f"{flag}: this run was created with {before!r}, not {after!r}; a resumed run "
                                f"keeps its settings (start a new run with another --out to change it)")
        if path == "iterations" and after < before:
            raise TtsGraphError(f"{flag}: this run was created with {before}; a resumed run can only go on "
                                f"longer, not {after}")
    return merged


def legacy_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """A run stored before RunConfig (flat `search` config key) as RunConfig data."""
    budget = {"nodes": cfg["budget_nodes"]} if cfg.get("budget_nodes") is not None else {"units": cfg.get("budget")}
    options = dict(cfg.get("optimizer_options") or {})
    for key in ("agent", "proposal"):
        if cfg.get(key):
            options[key] = cfg[key]
    return {
        "task": cfg["task"], "task_options": cfg.get("task_options") or {}, "models": cfg.get("models"),
        "budget": budget, "optimizer": {"name": cfg.get("optimizer", "agent-reinforce"), "options": options},
        "objective": cfg.get("objective", "accuracy"), "latency_weight": cfg.get("latency_weight", 0.0),
        "select": cfg.get("select"), "iterations": cfg.get("iterations", 10), "batch": cfg.get("batch", 3),
        "seed": cfg.get("seed", 0), "race": cfg.get("race", 0), "race_items": cfg.get("race_items"),
        "test_limit": cfg.get("test_limit"), "output_model": cfg.get("output_model"),
        "sampling": {"temperature": cfg.get("temperature", 0.1), "max_tokens": cfg.get("max_tokens", 256)},
        "lengths": cfg.get("lengths"),
    }


__all__ = ["RunConfig", "pool_spec_of", "Sampling", "BackendSettings", "BudgetSpec", "OptimizerSpec", "make_config",
           "from_sources", "load_recipe", "resume_config", "deep_merge", "legacy_config", "FLAGS", "CONTINUABLE"]
