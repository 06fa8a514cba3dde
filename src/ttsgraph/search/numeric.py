"""The one sigmoid, logit and softmax of the search code.

The probabilistic graph, REINFORCE's realize step and the agent-facing tables must agree on what
a logit means to the last bit: an agent shown p and writing p back must leave the sampler where it
was. So there is exactly one definition of each map, here, and every module imports it.
"""

from __future__ import annotations

from typing import overload

import numpy as np


@overload
def sigmoid(x: float) -> float: ...


@overload
def sigmoid(x: np.ndarray) -> np.ndarray: ...


def sigmoid(x: float | np.ndarray) -> float | np.ndarray:
    """1 / (1 + e^−x), without overflow for large |x| (a float for a float, an array for an array)."""
    a = np.asarray(x, dtype=float)
    e = np.exp(-np.abs(a))
    out = np.where(a >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
    return out if isinstance(x, np.ndarray) else float(out)


def logit(p: float) -> float:
    """The inverse of `sigmoid`: log(p / (1 − p)); p must be in (0, 1) (callers clip first)."""
    return float(np.log(p) - np.log1p(-p))


def softmax(x: np.ndarray) -> np.ndarray:
    """Softmax over the last axis, shifted by the maximum so no exponent overflows."""
    z = np.exp(x - np.max(x, axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


__all__ = ["logit", "sigmoid", "softmax"]
