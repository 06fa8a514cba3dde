"""Paired, sequential selection: the finalists race on the same items, the cheapest not-worse wins.

A search scores each candidate on a handful of items, so its ranking is mostly noise; choosing
the top of it picks the luckiest graph. Here the candidates (search proposals and classical
strategies alike) are compared on the *same* search items (common random numbers: same items and
same sample indices, so a node call two graphs share is answered once and comes from the cache),
and the promising ones earn more of them (successive halving): at each level every finalist is
scored on the first n items of the study's panel, those significantly worse than the incumbent
(the best classical strategy still racing) by a paired 95 % interval drop out, and the better
half goes on to twice the items, until the confirmation size. The selected graph is then the
**cheapest** finalist that is not significantly worse than the most accurate one (paired 95 %
interval of the per-item difference reaches 0) and trails it by at most `tolerance` (2 points by
default) on those items: extra compute must earn its place, but a cheaper graph that looks worse
is not taken just because a small panel cannot prove it (20 items cannot tell 5 points apart).

`cheapest_not_worse` and `halve` are pure (tested alone); `Contender` is one graph's per-item
outcomes, pooled from every trial that scored it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ttsgraph.graph import Graph
from ttsgraph.stats import PairedDifference, paired_difference_ci

RULE = "cheapest-not-worse"
TOLERANCE = 0.02
"""How far (accuracy, on the confirmation items) a cheaper finalist may trail the most accurate one
and still be selected, besides not being significantly worse."""


@dataclass
class Contender:
    """One graph in the race: its per-item outcomes (item id → correct; first score kept), its
    planned cost, the trial naming it and, for a classical strategy, its name."""

    graph_hash: str
    graph: Graph
    units: float
    trial: int
    name: str | None = None  # the classical strategy's name; None for a search proposal
    outcomes: dict[str, bool] = field(default_factory=dict)
    errors: set[str] = field(default_factory=set)
    pooled: float = 0.0  # pooled search accuracy (the first ranking)

    @property
    def classical(self) -> bool:
        return self.name is not None

    def label(self) -> str:
        return self.name or f"trial {self.trial}"

    def has(self, items: Sequence[str]) -> bool:
        return all(i in self.outcomes for i in items)

    def accuracy(self, items: Sequence[str]) -> float:
        return sum(self.outcomes[i] for i in items) / len(items) if items else 0.0

    def correct(self, items: Sequence[str]) -> int:
        return sum(1 for i in items if self.outcomes[i])


def paired(a: Contender, b: Contender, items: Sequence[str]) -> PairedDifference:
    """accuracy(a) − accuracy(b) on `items` (both scored on all of them), with its paired 95 % CI."""
    return paired_difference_ci([float(a.outcomes[i]) for i in items], [float(b.outcomes[i]) for i in items])


def _best_key(c: Contender, items: Sequence[str]) -> tuple[float, float, int]:
    return (-c.accuracy(items), c.units, c.trial)


def most_accurate(cs: Sequence[Contender], items: Sequence[str]) -> Contender:
    """Most accurate on `items`; ties: the cheaper, then the first scored."""
    return min(cs, key=lambda c: _best_key(c, items))


def significantly_worse(a: Contender, b: Contender, items: Sequence[str]) -> bool:
    """Whether a's paired 95 % interval against b lies wholly below 0."""
    return paired(a, b, items).high < -1e-12


def cheapest_not_worse(finalists: Sequence[Contender], items: Sequence[str],
                       tolerance: float = TOLERANCE) -> tuple[Contender, Contender]:
    """(selected, most accurate): the cheapest finalist not significantly worse than the most
    accurate one on `items` and at most `tolerance` below it (ties in cost: the more accurate,
    then the first scored)."""
    best = most_accurate(finalists, items)
    top = best.accuracy(items)
    ok = [c for c in finalists if c is best or (not significantly_worse(c, best, items)
                                                and c.accuracy(items) >= top - tolerance - 1e-12)]
    return min(ok, key=lambda c: (c.units, -c.accuracy(items), c.trial)), best


def halve(cs: Sequence[Contender], incumbent: Contender | None, items: Sequence[str]) -> list[Contender]:
    """The contenders that go on to the next level: those not significantly worse than the
    incumbent, then the better half of them (at least two), the incumbent always kept."""
    alive = [c for c in cs if incumbent is None or c is incumbent or not significantly_worse(c, incumbent, items)]
    alive.sort(key=lambda c: _best_key(c, items))
    keep = alive[: max(2, math.ceil(len(alive) / 2))]
    if incumbent is not None and incumbent not in keep:
        keep.append(incumbent)
    return keep


def levels(start: int, target: int) -> list[int]:
    """Item counts of successive halving: start, 2·start, … capped at target (target last)."""
    start = max(1, min(start, target))
    out = [start]
    while out[-1] < target:
        out.append(min(target, out[-1] * 2))
    return out


def diff_dict(d: PairedDifference) -> dict[str, Any]:
    return {"mean": d.mean, "low": d.low, "high": d.high, "n": d.n}


def _pts(diff: dict[str, Any]) -> str:
    return (f"{100 * diff['mean']:+.1f} points [{100 * diff['low']:+.1f}, {100 * diff['high']:+.1f}] "
            f"on {diff['n']} items")


def vs_classical_line(vs: dict[str, Any]) -> str:
    """The selected graph against the best classical strategy (a `Selection.vs_classical`): paired
    differences (selected − classical, 95% CI) on the search items and, once tested, the test items."""
    line = f"{vs['name']}: search {_pts(vs['search'])}"
    if vs.get("test"):
        line += f"; test {_pts(vs['test'])}"
    return line


def finalists_of(ranked: Sequence[Contender], k: int) -> list[Contender]:
    """The top `k` contenders by pooled search accuracy, plus every classical one not among them.
    All classical strategies enter the race: ranked on the first few items, a weak model alone
    can lead by luck (seen: Gemma alone 2/3 beside SmolLM2 alone 1/3), and keeping only the two
    best classical ones left the stronger model out of the race; halving prunes them cheaply."""
    top = list(ranked[:k])
    top.extend(c for c in ranked if c.classical and c not in top)
    return top


__all__ = ["RULE", "TOLERANCE", "Contender", "paired", "most_accurate", "significantly_worse", "cheapest_not_worse", "halve",
           "levels", "diff_dict", "finalists_of", "vs_classical_line"]
