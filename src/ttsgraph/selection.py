"""Which graph a search returns, and how good it looked: the one place that decides.

The study, the report (Pareto front, search curve, pooled trials) and bench's curves all ask this
module, because three copies of the rule disagreed: the report drew a one-item pretest probe at
100 % as the best graph while the study, rightly, had selected another one.

The rules:

- **Candidates.** A trial proposed as a screening probe (`candidate=False`, e.g. Agent-REINFORCE's
  one-item pretest) does not make its graph a candidate: 1/1 on one item would outrank every graph
  scored on a real batch. A graph is a candidate once any of its trials was.
- **Pooled accuracy.** A graph's accuracy is over every item it was scored on, in all its trials
  (racing included, a probe's item too once the graph is a candidate): correct / items, where an
  errored item counts as not correct; the error count stands beside it.
- **Ranking.** Objective utility (accuracy by default) high first, ties to fewer planned units,
  then to the graph scored first.
- **Rules.** `best` = the top-ranked candidate; `pareto` = the top-ranked candidate on the Pareto
  front of (accuracy ↑, planned units ↓, latency ↓); `last` = the graph of the last candidate
  search trial, as that trial scored it.
- **Best so far.** After each trial, the pooled accuracy of the graph `best` would pick from the
  trials up to it: what stopping there would have returned. It is not forced to be monotone: a
  best graph that racing re-scores lower pulls the curve down, as it pulls the selection down.

Trials are anything with the `TrialLike` fields (`store.TrialRecord`, the report's trials).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from ttsgraph.errors import TtsGraphError
from ttsgraph.graph import Graph
from ttsgraph.pareto import pareto_indices

RULES = ("best", "last", "pareto")
CONFIG_KEY = "selection"  # the run store's config key holding the study's decision


class TrialLike(Protocol):
    """What selection reads of a trial (`store.TrialRecord` has these fields)."""

    id: int
    iteration: int
    kind: str
    graph: Graph
    graph_hash: str
    planned_units: float
    correct: int
    scored: int  # items that did not error
    errors: int
    latency_mean: float | None  # mean critical path over the scored items
    candidate: bool


@dataclass
class GraphScore:
    """One graph pooled over its trials (in scoring order)."""

    graph_hash: str
    graph: Graph
    planned_units: float
    trials: list[Any] = field(default_factory=list)
    correct: int = 0
    items: int = 0
    errors: int = 0
    candidate: bool = False
    _lat_sum: float = 0.0
    _lat_items: int = 0

    @property
    def trial(self) -> int:
        """The id of the graph's first trial (how the graph is named in tables and the store)."""
        return int(self.trials[0].id)

    @property
    def accuracy(self) -> float:
        return self.correct / self.items if self.items else 0.0

    @property
    def latency(self) -> float | None:
        """Mean critical-path seconds over the items that did not error; None if none did."""
        return self._lat_sum / self._lat_items if self._lat_items else None

    def add(self, t: TrialLike) -> None:
        self.trials.append(t)
        self.correct += int(t.correct)
        self.items += int(t.scored) + int(t.errors)
        self.errors += int(t.errors)
        self.candidate = self.candidate or bool(t.candidate)
        if t.latency_mean is not None and t.scored:
            self._lat_sum += float(t.latency_mean) * int(t.scored)
            self._lat_items += int(t.scored)


Score = Callable[[GraphScore], float]


def by_accuracy(g: GraphScore) -> float:
    return g.accuracy


def pool(trials: Iterable[TrialLike]) -> list[GraphScore]:
    """Every graph of `trials`, pooled, in the order each was first scored."""
    groups: dict[str, GraphScore] = {}
    for t in trials:
        g = groups.get(t.graph_hash)
        if g is None:
            g = groups[t.graph_hash] = GraphScore(t.graph_hash, t.graph, float(t.planned_units))
        g.add(t)
    return list(groups.values())


def candidates(trials: Iterable[TrialLike]) -> list[GraphScore]:
    """The candidate graphs scored on at least one item, pooled (see the module docstring)."""
    return [g for g in pool(trials) if g.candidate and g.items]


def rank_key(g: GraphScore, score: Score = by_accuracy) -> tuple[float, float, int]:
    return (-score(g), g.planned_units, g.trial)


def rank(graphs: Iterable[GraphScore], score: Score = by_accuracy) -> list[GraphScore]:
    """Best first: utility ↓, planned units ↑, first scored ↑."""
    return sorted(graphs, key=lambda g: rank_key(g, score))


def front(graphs: Sequence[GraphScore]) -> list[GraphScore]:
    """The Pareto front of (accuracy ↑, planned units ↓, latency ↓); a graph without a latency
    (every item errored) is never on it."""
    return [graphs[i] for i in pareto_indices(graphs)]


@dataclass
class Selection:
    """The graph a study returned and the evidence for it, as stored under `CONFIG_KEY`.

    `trial` names the graph (its first trial; for `last`, the last trial); `accuracy` =
    correct / items over what the rule pooled, `errors` among those items; `pareto` = the trials
    naming the front's graphs when the rule is `pareto`. With the paired confirmation (rule
    `cheapest-not-worse`) `accuracy` is over the confirmation items, `confirm` holds its levels and
    finalists with their paired differences against the most accurate one, and `vs_classical` the
    paired difference (selected − best classical strategy) on the search items and, once tested,
    on the test items."""

    trial: int
    graph_hash: str
    accuracy: float
    correct: int
    items: int
    errors: int
    rule: str
    planned_units: float
    latency: float | None
    pareto: list[int] = field(default_factory=list)
    confirm: dict[str, Any] = field(default_factory=dict)  # the paired confirmation (`ttsgraph.confirm`), if run
    vs_classical: dict[str, Any] = field(default_factory=dict)  # selected − best classical: search and test CIs

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Selection:
        try:
            return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})
        except TypeError as exc:
            raise TtsGraphError(f"stored selection is incomplete: {exc}") from None

    @classmethod
    def of(cls, g: GraphScore, rule: str, pareto: Sequence[GraphScore] = (), trial: int | None = None) -> Selection:
        return cls(trial=g.trial if trial is None else trial, graph_hash=g.graph_hash, accuracy=g.accuracy,
                   correct=g.correct, items=g.items, errors=g.errors, rule=rule, planned_units=g.planned_units,
                   latency=g.latency, pareto=sorted(p.trial for p in pareto))


def choose(trials: Sequence[TrialLike], rule: str = "best", score: Score = by_accuracy) -> Selection:
    """The study's decision over `trials` (search and race). With no candidate at all (a budget
    spent on probes only) every scored graph is considered, so a finished study always returns one."""
    if rule not in RULES:
        raise TtsGraphError(f"unknown selection {rule!r}; use one of {', '.join(RULES)}")
    search = [t for t in trials if t.kind == "search"]
    if not search:
        raise TtsGraphError("the study scored no trial: nothing to select")
    if rule == "last":
        last = next((t for t in reversed(search) if t.candidate), search[-1])
        return Selection.of(pool([last])[0], rule, trial=int(last.id))
    graphs = candidates(trials) or [g for g in pool(trials) if g.items] or pool(trials)
    if rule == "pareto":
        on_front = front(graphs)
        return Selection.of(rank(on_front or graphs, score)[0], rule, on_front)
    return Selection.of(rank(graphs, score)[0], rule)


@dataclass(frozen=True)
class CurvePoint:
    """The best-so-far curve after one trial: `evaluations` = items scored up to and including it."""

    trial: int
    iteration: int
    kind: str
    evaluations: int
    accuracy: float  # pooled accuracy of the graph `best` would pick from the trials so far
    trial_accuracy: float | None  # this trial's own correct / items; None for a probe


def best_so_far(trials: Iterable[TrialLike]) -> list[CurvePoint]:
    """One point per trial once a candidate exists (probes before it spend evaluations but draw
    nothing); a probe's own accuracy is never drawn."""
    groups: dict[str, GraphScore] = {}
    spent = 0
    out: list[CurvePoint] = []
    for t in trials:
        g = groups.get(t.graph_hash)
        if g is None:
            g = groups[t.graph_hash] = GraphScore(t.graph_hash, t.graph, float(t.planned_units))
        g.add(t)
        n = int(t.scored) + int(t.errors)
        spent += n
        live = [c for c in groups.values() if c.candidate and c.items]
        if not live:
            continue
        best = min(live, key=rank_key)
        own = int(t.correct) / n if t.candidate and n else None
        out.append(CurvePoint(int(t.id), int(t.iteration), str(t.kind), spent, best.accuracy, own))
    return out


def load(config: Mapping[str, Any]) -> Selection | None:
    """The study's recorded decision from a run's config (None: unfinished or older run)."""
    raw = config.get(CONFIG_KEY)
    return Selection.from_dict(raw) if isinstance(raw, Mapping) else None


__all__ = ["RULES", "CONFIG_KEY", "TrialLike", "GraphScore", "Selection", "CurvePoint", "pool", "candidates",
           "rank", "rank_key", "front", "choose", "best_so_far", "by_accuracy", "load"]
