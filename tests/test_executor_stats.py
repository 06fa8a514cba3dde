"""Wilson intervals, percentiles and the paired-difference interval (stats.py)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ttsgraph.stats import paired_difference_ci, percentile, t_quantile, wilson_interval


def test_wilson_known_values_and_edges() -> None:
    lo, hi = wilson_interval(5, 10)
    assert lo == pytest.approx(0.2366, abs=1e-3) and hi == pytest.approx(0.7634, abs=1e-3)
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(0, 10)[1] == pytest.approx(0.2775, abs=1e-3)
    assert wilson_interval(10, 10)[1] == 1.0
    assert wilson_interval(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError):
        wilson_interval(3, 2)


@given(st.integers(0, 200), st.integers(1, 200))
def test_wilson_contains_the_estimate(k: int, n: int) -> None:
    k = min(k, n)
    lo, hi = wilson_interval(k, n)
    assert 0 <= lo <= k / n <= hi <= 1
    assert hi - lo >= wilson_interval(k * 4, n * 4)[1] - wilson_interval(k * 4, n * 4)[0] - 1e-12


def test_percentile_interpolates() -> None:
    xs = [4.0, 1.0, 3.0, 2.0]
    assert percentile(xs, 0) == 1.0 and percentile(xs, 100) == 4.0
    assert percentile(xs, 50) == pytest.approx(2.5)
    assert percentile([7.0], 95) == 7.0
    with pytest.raises(ValueError):
        percentile([], 50)


def test_t_quantiles_match_tables() -> None:
    assert t_quantile(0.975, 1) == pytest.approx(12.706, abs=2e-3)
    assert t_quantile(0.975, 4) == pytest.approx(2.776, abs=1e-3)
    assert t_quantile(0.975, 30) == pytest.approx(2.042, abs=1e-3)
    assert t_quantile(0.025, 10) == pytest.approx(-2.228, abs=1e-3)


def test_paired_difference() -> None:
    a = [1, 1, 1, 0, 1, 1, 0, 1]
    b = [0, 1, 0, 0, 1, 0, 0, 1]
    d = paired_difference_ci(a, b)
    assert d.mean == pytest.approx(3 / 8) and d.n == 8
    assert d.low < d.mean < d.high
    same = paired_difference_ci(a, a)
    assert (same.mean, same.low, same.high) == (0, 0, 0)
    with pytest.raises(ValueError):
        paired_difference_ci([1], [1, 0])


def test_paired_interval_covers_the_true_difference_about_95_percent() -> None:
    rng = random.Random(3)
    hits = 0
    for _ in range(400):
        a = [rng.gauss(0.3, 1) for _ in range(15)]
        b = [x - 0.3 + rng.gauss(0, 0.5) for x in a]  # true mean difference 0.3
        d = paired_difference_ci(a, b)
        hits += d.low <= 0.3 <= d.high
    assert 0.90 <= hits / 400 <= 0.99
