"""The optimizer contract: ask for graphs, be told how they scored, serialize to resume.

Like Optuna's samplers, every optimizer is one small class behind this interface and passes the
same contract tests, so the study loop, the store, `ttsgraph search` and `ttsgraph bench` treat
Agent-REINFORCE and every baseline identically (same budget, same evaluation budget, same items).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ttsgraph.errors import TtsGraphError
from ttsgraph.graph import Graph

if TYPE_CHECKING:
    from ttsgraph.search.space import SearchSpace


class OptimizerOptions(BaseModel):
    """An optimizer's own settings (`--opt KEY=VALUE`, a recipe's `[optimizer.options]`).

    Each optimizer declares a subclass as its `Options`; an unknown or misspelled key is an error
    naming it and listing the valid ones, never silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @classmethod
    def parse(cls, optimizer: str, options: dict[str, Any]) -> OptimizerOptions:
        valid = ", ".join(sorted(cls.model_fields)) or "none"
        unknown = sorted(set(options) - set(cls.model_fields))
        if unknown:
            raise TtsGraphError(f"optimizer {optimizer!r}: unknown option {unknown[0]!r} (valid: {valid})")
        try:
            return cls(**options)
        except ValidationError as exc:
            err = exc.errors()[0]
            field_name = ".".join(str(x) for x in err.get("loc", ())) or "?"
            raise TtsGraphError(f"optimizer {optimizer!r}: option {field_name!r}: {err.get('msg', exc)}") from None


class MixOptions(OptimizerOptions):
    """Settings of the optimizers that draw worker model mixes from `SearchSpace.combos`."""

    budget_filling: bool = Field(False, description="draw only the mixes that fill the budget (the paper's "
                                                    "behaviour); default: under-filled mixes too")


@dataclass
class SearchContext:
    """What the caller (the runtime) resolves for an optimizer: the backend its agent calls, the
    task, the objective and the profile. Options are settings; this is the world they act on."""

    backend: Any = None
    task: Any = None
    objective: str = "accuracy"
    profile: Any = None  # a resolved `ttsgraph.profile.Profile`, or None


@dataclass
class Proposal:
    """A graph an optimizer wants scored on `n_items` fresh search items.

    `meta` is the optimizer's own bookkeeping (log-probability, which model mix, agent exchange id)
    and is stored with the trial.
    """

    graph: Graph
    n_items: int
    meta: dict[str, Any] = field(default_factory=dict)
    candidate: bool = True  # False: a screening probe (e.g. a one-item pretest), never the selected graph


@dataclass
class Evaluation:
    """How a proposal scored. `accuracy` = correct / scored, where errored items are not scored
    (an error is not a wrong answer); `utility` is what the optimizer maximizes (accuracy, or the
    scalarized accuracy-latency objective)."""

    trial: int
    graph: Graph
    accuracy: float
    utility: float
    correct: int
    scored: int
    errors: int
    item_ids: list[str]
    planned_units: float
    measured_units: float
    latency: float  # mean critical-path seconds per item
    meta: dict[str, Any] = field(default_factory=dict)
    feedback: list[dict[str, Any]] = field(default_factory=list)  # per item: id, correct, extracted, error
    candidate: bool = True  # copied from the proposal: False for screening probes

    def to_dict(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in ("trial", "accuracy", "utility", "correct", "scored", "errors",
                                           "item_ids", "planned_units", "measured_units", "latency", "meta",
                                           "feedback", "candidate")}
        d["graph"] = self.graph.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Evaluation:
        return cls(graph=Graph.from_dict(d["graph"]), **{k: v for k, v in d.items() if k != "graph"})


class Optimizer(ABC):
    """ask() → proposals, tell(evaluations) → learn. Subclasses set `name` and register.

    The study owns the evaluation budget (iterations × batch items); an optimizer may propose
    several graphs per ask (REINFORCE samples a few), each with its own `n_items`, and the study
    trims the last ask so the total never exceeds the budget. All randomness comes from
    `self.rng` seeded by `seed`, and `state_dict()` captures it, so a resumed study asks exactly
    what the uninterrupted one would have.
    """

    name: ClassVar[str] = ""
    Options: ClassVar[type[OptimizerOptions]] = OptimizerOptions
    reads_profile: ClassVar[bool] = False  # True: the caller resolves a profile into `context.profile`

    def __init__(self, space: SearchSpace, *, seed: int = 0, iterations: int = 10, batch: int = 3,
                 context: SearchContext | None = None, **options: Any) -> None:
        import numpy as np

        self.space = space
        self.seed = seed
        self.iterations = iterations
        self.batch = batch
        self.opts = self.Options.parse(self.name, options)  # typed; unknown keys raise
        self.ctx = context or SearchContext()
        self.rng = np.random.default_rng(seed)
        self.history: list[Evaluation] = []
        self.reference: list[Evaluation] = []  # `observe`: scores of graphs it did not propose

    @abstractmethod
    async def ask(self) -> list[Proposal]:
        """The next graphs to score. Async because LLM-driven optimizers call an agent."""

    def tell(self, evaluations: list[Evaluation]) -> None:
        """Learn from the scored proposals of the last ask (in the same order)."""
        self.history.extend(evaluations)

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly where this optimizer stopped (JSON-able), except
        the history: the study stores every evaluation as a trial already, and a state that grew
        with it would make the store grow quadratically with the iterations. Keep it fixed-size."""
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any], history: Sequence[Evaluation] = ()) -> None:
        """Continue from `state_dict()`; `history` is what was told before it, in tell order (the
        study rebuilds it from its stored trials). Subclasses derive what they learnt from the
        history from it instead of storing it twice."""
        self.rng.bit_generator.state = state["rng"]
        self.history = list(history)

    def observe(self, evaluations: Sequence[Evaluation]) -> None:
        """Scores of graphs this optimizer did not propose — the classical strategies, scored
        first on the items its candidates get — as feedback (the incumbent to beat). Not told:
        nothing here is a sample of the optimizer's own distribution. Kept in `self.reference`;
        agent optimizers show them in their prompts. Called again on resume, from the store."""
        self.reference = list(evaluations)

    def drain_exchanges(self) -> list[Any]:
        """Agent exchanges (`ttsgraph.search.agent.Exchange`) since the last drain, for the store's
        agent log; numeric optimizers have none."""
        return []

    def agent_seconds(self) -> float:
        """Time spent in the optimizer's own LLM calls (0 for numeric optimizers)."""
        return 0.0


OPTIMIZERS: dict[str, type[Optimizer]] = {}


def register(cls: type[Optimizer]) -> type[Optimizer]:
    """Class decorator: make an optimizer available by its `name` to the CLI and to bench."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no name")
    OPTIMIZERS[cls.name] = cls
    return cls


def get_optimizer(name: str) -> type[Optimizer]:
    """Look an optimizer up by name, importing the built-in ones on first use."""
    import importlib

    for module in ("agent_reinforce", "random_search", "tpe", "reinforce", "textgrad", "hybrid"):
        try:
            importlib.import_module(f"ttsgraph.search.{module}")
        except ModuleNotFoundError as exc:
            if exc.name != f"ttsgraph.search.{module}":
                raise
    try:
        return OPTIMIZERS[name]
    except KeyError:
        raise TtsGraphError(f"unknown optimizer {name!r}; available: {', '.join(sorted(OPTIMIZERS))}") from None
