"""The study's utility: accuracy, or accuracy − w · latency / reference latency.

The reference latency makes the weight unit-free. It is the mean latency of the first trial (in
scoring order, search before racing) that scored an item in non-zero time, and it must be a pure
function of the stored trials: a live run picks it up as trials arrive, a resumed run recomputes
it from the store with the same rule. Two rules drifted apart once (the live one skipped an
all-errors first trial, the resumed one did not), so a resume under `accuracy-latency` changed
every later utility and the selection; `Objective.observe` is now the only rule and `from_trials`
replays it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from ttsgraph.errors import TtsGraphError

OBJECTIVES = ("accuracy", "accuracy-latency")


class Timed(Protocol):
    """What the reference reads of a trial (`store.TrialRecord` has these fields)."""

    scored: int
    latency_mean: float | None


@dataclass
class Objective:
    """One study's utility; `reference` is None until a trial scored an item in non-zero time."""

    name: str = "accuracy"
    latency_weight: float = 0.0
    reference: float | None = None

    def __post_init__(self) -> None:
        if self.name not in OBJECTIVES:
            raise TtsGraphError(f"unknown objective {self.name!r}; use one of {', '.join(OBJECTIVES)}")

    def observe(self, scored: int, latency: float | None) -> None:
        """Take the reference from a newly scored trial if there is none yet."""
        if self.reference is None and scored > 0 and latency:
            self.reference = float(latency)

    def utility(self, accuracy: float, latency: float | None) -> float:
        """Accuracy, less the weighted latency relative to the reference (a trial scored before any
        reference exists, i.e. with zero latency, is its own reference: it pays no latency)."""
        if self.name == "accuracy":
            return accuracy
        latency = latency or 0.0
        ref = self.reference or latency or 1.0
        return accuracy - self.latency_weight * latency / ref

    @classmethod
    def from_trials(cls, name: str, latency_weight: float, trials: Iterable[Timed]) -> Objective:
        """The objective as a live run had it after `trials` (stored order)."""
        objective = cls(name, latency_weight)
        for t in trials:
            objective.observe(int(t.scored), t.latency_mean)
        return objective


__all__ = ["OBJECTIVES", "Objective", "Timed"]
