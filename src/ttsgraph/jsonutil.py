"""The one rule for turning ttsgraph objects into JSON (the run store, `--json`, bench.json).

Results are dataclasses with `to_dict()`, tuples (CIs), sets and numpy scalars; every writer
needs the same fallback, and two writers disagreeing on it (one writing `"(0.1, 0.9)"`, the
other `[0.1, 0.9]`) would make the same value read back differently depending on who wrote it.
"""

from __future__ import annotations

from typing import Any


def to_jsonable(o: Any) -> Any:
    """`json.dumps(..., default=to_jsonable)`: `to_dict()` objects, tuples/sets as lists, numpy
    scalars as Python numbers, anything else as its string."""
    if hasattr(o, "to_dict"):
        return o.to_dict()
    if isinstance(o, (set, frozenset, tuple)):
        return list(o)
    if hasattr(o, "item"):  # numpy scalars
        return o.item()
    return str(o)


__all__ = ["to_jsonable"]
