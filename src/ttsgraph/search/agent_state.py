"""Agent-REINFORCE's state: its phases, what one ask computed, and what the tells committed.

Resume must be exact: a study resumed from the state stored after any tell asks exactly what the
uninterrupted one would. So everything `ask()` computes goes into a `Pending` that only `tell()`
commits into the `AgentState`, and the state holds only what the next rounds need (the last
graph and table, the history window, counters), never a list that grows every round: the store
keeps one state per iteration, so per-round growth would make it grow quadratically. Each
fallback is recorded in its trial's meta; the state only counts them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from ttsgraph.graph import Graph


class Phase(str, Enum):
    """A round of the study, as stored in the state and in a proposal's meta `phase`."""

    INIT = "init"  # the agent picks model mixes (then the pretest's graphs are asked)
    PRETEST = "pretest"  # variants of the picks, one item each, choose the mix
    INITIAL = "initial"  # a random graph with the chosen mix
    UPDATE = "update"  # the agent writes the next graph and table


Counts = dict[str, int]


@dataclass
class Pending:
    """What the last ask computed, committed by the next tell (forgotten by a resume)."""

    kind: Phase  # PRETEST, INITIAL or UPDATE: what the proposals are
    counts: Counts = field(default_factory=dict)
    view: Graph | None = None
    table: dict[str, float] = field(default_factory=dict)
    note: str | None = None
    turn: dict[str, str] | None = None  # the accepted (prompt, reply), for the history
    retries: int = 0
    fallbacks: int = 0
    picked: list[Counts] | None = None  # set by the init ask
    variants: list[Counts] | None = None


@dataclass
class AgentState:
    """Everything a resumed Agent-REINFORCE continues from (besides the RNG and the agent client)."""

    phase: Phase = Phase.INIT  # what the next ask does: INIT, INITIAL or UPDATE
    picked: list[Counts] = field(default_factory=list)
    variants: list[Counts] = field(default_factory=list)
    counts: Counts = field(default_factory=dict)
    view: Graph | None = None  # the last graph as the agent sees it (unused nodes included)
    table: dict[str, float] = field(default_factory=dict)  # "src->dst" -> p over `view`'s potential edges
    turns: list[dict[str, str]] = field(default_factory=list)  # the last `history` accepted exchanges
    last: dict[str, Any] = field(default_factory=dict)  # accuracy, latency, scored, utility of the last graph
    note: str | None = None  # told to the agent next round (a budget repair)
    round: int = 0  # graphs scored on a batch (initial + updates)
    iteration: int = 0  # completed ask/tell rounds = the study's iteration of the next ask
    retry_count: int = 0
    fallback_count: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"phase": self.phase.value, "picked": self.picked, "variants": self.variants, "counts": self.counts,
                "view": self.view.to_dict() if self.view is not None else None, "table": self.table,
                "turns": self.turns, "last": self.last, "note": self.note, "round": self.round,
                "iteration": self.iteration, "retry_count": self.retry_count, "fallback_count": self.fallback_count}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AgentState:
        return cls(phase=Phase(d.get("phase", Phase.INIT.value)),
                   picked=[dict(p) for p in d.get("picked", [])], variants=[dict(v) for v in d.get("variants", [])],
                   counts={k: int(v) for k, v in d.get("counts", {}).items()},
                   view=Graph.from_dict(d["view"]) if d.get("view") else None,
                   table={k: float(v) for k, v in d.get("table", {}).items()}, turns=list(d.get("turns", [])),
                   last=dict(d.get("last", {})), note=d.get("note"), round=int(d.get("round", 0)),
                   iteration=int(d.get("iteration", 0)), retry_count=int(d.get("retry_count", 0)),
                   fallback_count=int(d.get("fallback_count", 0)))

    def commit(self, pending: Pending, history: int) -> None:
        """Take a scored initial or update round: its graph, table and note become the current
        ones, its accepted exchange joins the last `history` turns."""
        self.counts = pending.counts
        self.view = pending.view
        self.table = pending.table
        self.note = pending.note
        if pending.turn:
            self.turns = (self.turns + [pending.turn])[-history:] if history > 0 else []
        self.round += 1
        self.phase = Phase.UPDATE
