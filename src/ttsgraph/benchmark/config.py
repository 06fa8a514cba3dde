"""What a bench runs: its settings, the budget they give, and each optimizer's options.

Checked before anything runs (a typo must not surface after an hour of search). Optimizer
options are strict (`OptimizerOptions`), so a bench-wide `--opt KEY=VALUE` ("*") goes only to
the optimizers whose `Options` declare KEY, and is an error when none of them does.

A row of `--optimizers` is an optimizer name with its own options, `NAME[:KEY=VALUE[:KEY=VALUE]]`
(`agent-reinforce:insights=false`): the same optimizer can stand in several rows (the paper's
ablations beside the full method), and each row is named by what it runs.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ttsgraph.errors import BudgetError, TtsGraphError

if TYPE_CHECKING:
    from ttsgraph.config import RunConfig

DEFAULT_OPTIMIZERS = ("agent-reinforce", "tpe", "random", "reinforce", "textgrad", "hybrid")
CLASSICAL_MODES = ("both", "on", "off")
CLASSICAL_SUFFIX = "+classical"
"""A row whose studies also score the classical strategies and race them (issue 11) is its optimizer
row's name with this suffix, so "with" and "without" stand side by side."""


@dataclass
class BenchConfig:
    """Everything a bench run depends on (stored in `bench.json` next to the run directories)."""

    task: str = "arithmetic"
    task_options: dict[str, Any] = field(default_factory=dict)
    models: str | None = None  # pool name or models.toml; None = the embedded local pool
    budget: float | None = None  # units
    budget_nodes: int | None = None  # node budget b (SPEC §2.3)
    optimizers: tuple[str, ...] = DEFAULT_OPTIMIZERS
    seeds: int = 3
    iterations: int = 4
    batch: int = 2
    agent: str | None = None  # agent model of LLM-driven optimizers; default: the pool's largest chat model
    test_limit: int | None = 20
    out: Path = Path("bench-out")
    cache: Path | None = None  # None = no cache (tests); the CLI passes the shared default
    concurrency: int = 2
    timeout: float = 600.0  # seconds per HTTP attempt (OpenAI-compatible backends)
    retries: int = 3
    max_tokens: int = 64
    temperature: float = 0.1
    agent_max_tokens: int = 768
    baselines: bool = True
    classical: str = "both"  # optimizer rows without ("off"), with ("on") or both ways, the classical candidates
    confirm: int = 4  # finalists of the paired confirmation in the rows with classical candidates
    confirm_items: int = 20
    select: str = "best"
    optimizer_options: dict[str, dict[str, Any]] = field(default_factory=dict)  # per optimizer name; "*" = all
    executor: str = "local"  # "ray": model calls on a Ray cluster (docs/distributed.md)
    ray_address: str | None = None
    ray_actors: int | None = None

    def rows(self) -> list[tuple[str, str, bool]]:
        """(row name, optimizer row, with classical candidates) for every optimizer row, in order:
        without them first, then with them (`classical`)."""
        out: list[tuple[str, str, bool]] = []
        for row in self.optimizers:
            if self.classical in ("both", "off"):
                out.append((row, row, False))
            if self.classical in ("both", "on"):
                out.append((row + CLASSICAL_SUFFIX, row, True))
        return out

    def run_config(self, classical: bool = False) -> RunConfig:
        """The `RunConfig` every study of the bench shares (task, pool, budget, sampling, backend,
        evaluation budget, selection), so a bench assembles its runtime like every other command.
        Its studies do not test (`test_limit=0`): the bench scores each selected graph itself on
        the shared test items, keeping per-item outcomes for the paired comparison. With
        `classical`, the study scores the classical strategies first and races its finalists
        against them, as `ttsgraph search` does; without, it is the plain optimizer (the bench
        scores the classical strategies as its own baseline rows either way)."""
        from ttsgraph.config import make_config

        budget = {"nodes": self.budget_nodes} if self.budget_nodes is not None else (
            {"units": self.budget} if self.budget is not None else {"nodes": 3})
        return make_config({
            "task": self.task, "task_options": self.task_options, "models": self.models, "budget": budget,
            "iterations": self.iterations, "batch": self.batch, "select": self.select, "test_limit": 0,
            "classical": classical, "confirm": self.confirm if classical else 0, "confirm_items": self.confirm_items,
            "sampling": {"temperature": self.temperature, "max_tokens": self.max_tokens},
            "backend": {"cache": str(self.cache) if self.cache is not None else None, "no_cache": self.cache is None,
                        "concurrency": self.concurrency, "timeout": self.timeout, "retries": self.retries},
            "executor": self.executor, "ray_address": self.ray_address, "ray_actors": self.ray_actors,
        })

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["optimizers"] = list(self.optimizers)
        d["out"] = str(self.out)
        d["cache"] = str(self.cache) if self.cache is not None else None
        return d


def declares(optimizer: str, key: str) -> bool:
    """Whether the optimizer's `Options` has the setting `key`."""
    from ttsgraph.search.base import get_optimizer

    return key in get_optimizer(optimizer).Options.model_fields


def split_row(row: str) -> tuple[str, dict[str, Any]]:
    """A row `NAME[:KEY=VALUE[:KEY=VALUE]]` into the optimizer's name and the row's own options
    (true/false, ints and floats converted as for `--opt`)."""
    from ttsgraph.cli.common import parse_pairs

    name, *pairs = row.split(":")
    if not name.strip():
        raise TtsGraphError(f"optimizer row {row!r} must look like NAME or NAME:KEY=VALUE[:KEY=VALUE]")
    bad = [p for p in pairs if "=" not in p or not p.partition("=")[0].strip()]
    if bad:
        raise TtsGraphError(f"optimizer row {row!r}: {bad[0]!r} must look like KEY=VALUE")
    return name.strip(), parse_pairs([p.strip() for p in pairs], "optimizer")


def uses_agent(config: BenchConfig) -> bool:
    return any(declares(split_row(name)[0], "agent") for name in config.optimizers)


def check_config(config: BenchConfig) -> None:
    """Reject a bad configuration before anything runs (names the bad value)."""
    from ttsgraph.search.base import get_optimizer

    if not config.optimizers:
        raise TtsGraphError("no optimizer to bench: pass --optimizers")
    dup = [n for n, k in Counter(config.optimizers).items() if k > 1]
    if dup:
        raise TtsGraphError(f"optimizer {dup[0]!r} is listed twice")
    bases = [split_row(row)[0] for row in config.optimizers]
    for name in bases:
        get_optimizer(name)  # raises naming the unknown one and the known ones
    for name in config.optimizer_options:
        if name != "*" and name not in bases and name not in config.optimizers:
            raise TtsGraphError(f"optimizer options given for {name!r}, which is not among --optimizers")
    for key in config.optimizer_options.get("*", {}):
        if not any(declares(name, key) for name in bases):
            raise TtsGraphError(f"--opt {key}=...: none of the optimizers ({', '.join(config.optimizers)}) "
                                f"has an option {key!r}")
    for row, name in zip(config.optimizers, bases):
        get_optimizer(name).Options.parse(row, optimizer_options(row, config, config.agent))
    for key in ("seeds", "iterations", "batch", "concurrency", "max_tokens"):
        if getattr(config, key) < 1:
            raise TtsGraphError(f"--{key.replace('_', '-')} must be >= 1, got {getattr(config, key)}")
    if config.classical not in CLASSICAL_MODES:
        raise TtsGraphError(f"--classical must be one of {', '.join(CLASSICAL_MODES)}, got {config.classical!r}")
    if config.confirm < 1 or config.confirm_items < 1:
        raise TtsGraphError(f"--confirm and --confirm-items must be >= 1, got {config.confirm} and {config.confirm_items}")
    if config.test_limit is not None and config.test_limit < 1:
        raise TtsGraphError(f"--test-limit must be >= 1, got {config.test_limit}")
    if config.budget is not None and config.budget_nodes is not None:
        raise BudgetError("give either --budget or --budget-nodes, not both")


def optimizer_options(row: str, config: BenchConfig, agent_model: str | None) -> dict[str, Any]:
    """One row's options: the bench's agent settings and its "*" options where the optimizer
    declares them, then the optimizer's `--opt NAME:KEY=VALUE` options, then the row's own
    `NAME:KEY=VALUE` (strict: checked by the optimizer's Options)."""
    name, own = split_row(row)
    shared = {"agent": agent_model, "agent_max_tokens": config.agent_max_tokens,
              **config.optimizer_options.get("*", {})}
    out = {k: v for k, v in shared.items() if v is not None and declares(name, k)}
    out.update(config.optimizer_options.get(name, {}))
    out.update(own)
    return out


def run_dir_for(out: Path, optimizer: str, seed: int) -> Path:
    """A row's run directory: its name with anything but letters, digits, `.`, `-` and `_` as `_`
    (`agent-reinforce:insights=false` → `agent-reinforce_insights_false-seed0`)."""
    return out / "runs" / f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', optimizer)}-seed{seed}"
