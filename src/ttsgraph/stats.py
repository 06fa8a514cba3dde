"""Small statistics for honest comparisons on few items.

Evaluations here run on tens of items, so a bare accuracy misleads: every accuracy comes with a
Wilson interval (good coverage even at 0/n or n/n, unlike the normal approximation), latencies are
summarized by percentiles, and two graphs scored on the same items are compared by a paired
difference with a Student-t interval (pairing removes the per-item difficulty noise).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import NamedTuple


def _normal_quantile(p: float) -> float:
    """Inverse standard normal CDF by bisection on math.erf (plenty accurate for intervals)."""
    if not 0 < p < 1:
        raise ValueError(f"probability must be in (0, 1), got {p}")
    lo, hi = -40.0, 40.0
    for _ in range(200):
        mid = (lo + hi) / 2
        if 0.5 * (1 + math.erf(mid / math.sqrt(2))) < p:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def wilson_interval(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for k successes in n trials. n = 0 gives the uninformative (0, 1)."""
    if n < 0 or k < 0 or k > n:
        raise ValueError(f"need 0 <= k <= n, got k={k}, n={n}")
    if n == 0:
        return (0.0, 1.0)
    z = _normal_quantile(0.5 + confidence / 2)
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    low = 0.0 if k == 0 else max(0.0, centre - half)
    high = 1.0 if k == n else min(1.0, centre + half)
    return (low, high)


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) with linear interpolation between order statistics."""
    if not values:
        raise ValueError("percentile of an empty sequence")
    if not 0 <= q <= 100:
        raise ValueError(f"q must be in [0, 100], got {q}")
    xs = sorted(values)
    pos = (len(xs) - 1) * q / 100
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def _t_cdf(t: float, df: int) -> float:
    """Student-t CDF by Simpson integration of the density from 0 to |t|."""
    if t == 0:
        return 0.5
    log_c = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)

    def pdf(x: float) -> float:
        return math.exp(log_c - (df + 1) / 2 * math.log1p(x * x / df))

    a, b, steps = 0.0, abs(t), 2000
    h = (b - a) / steps
    s = pdf(a) + pdf(b) + sum((4 if i % 2 else 2) * pdf(a + i * h) for i in range(1, steps))
    area = s * h / 3
    return 0.5 + area if t > 0 else 0.5 - area


@functools.lru_cache(maxsize=256)
def t_quantile(p: float, df: int) -> float:
    """Inverse Student-t CDF (bisection on `_t_cdf`; cached, callers ask for few distinct values)."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {df}")
    if not 0 < p < 1:
        raise ValueError(f"probability must be in (0, 1), got {p}")
    lo, hi = -1e3, 1e3
    for _ in range(60):
        mid = (lo + hi) / 2
        if _t_cdf(mid, df) < p:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


class PairedDifference(NamedTuple):
    """Mean of (a - b) over paired items and its confidence interval."""

    mean: float
    low: float
    high: float
    n: int


def paired_difference_ci(
    a: Sequence[float], b: Sequence[float], confidence: float = 0.95
) -> PairedDifference:
    """Confidence interval of mean(a_i - b_i) for two systems scored on the same items (e.g. 0/1
    correctness of two graphs). With fewer than two items, or no spread at all, the interval
    collapses to the mean, which says "no evidence of spread", not "certain"."""
    if len(a) != len(b):
        raise ValueError(f"paired samples must have equal length, got {len(a)} and {len(b)}")
    n = len(a)
    if n == 0:
        raise ValueError("paired difference of empty samples")
    d = [float(x) - float(y) for x, y in zip(a, b)]
    mean = sum(d) / n
    if n < 2:
        return PairedDifference(mean, mean, mean, n)
    var = sum((x - mean) ** 2 for x in d) / (n - 1)
    half = t_quantile(0.5 + confidence / 2, n - 1) * math.sqrt(var / n)
    return PairedDifference(mean, mean - half, mean + half, n)
