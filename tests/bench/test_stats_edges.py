"""Edges of the statistics that decide a verdict: two seeds, no seed, the t quantiles past the
table, the incomplete beta function's closed forms, capped adjustments, interval bounds.

Found by mutation testing (``bash benchmarks/mutation.sh stats``): each test here fails on a
mutant the older tests let through.
"""

from __future__ import annotations

import math

import pytest

from cnnbench.bench.stats import (
    describe,
    holm,
    incomplete_beta,
    paired,
    t_quantile_975,
    t_two_sided_p,
    verdict,
)


@pytest.mark.parametrize(
    # t_{0.975, df} to 7 digits (scipy.stats.t.ppf); the tolerance is the expansion's own error with a margin
    ("df", "quantile", "tol"),
    [(31, 2.0395134, 1e-4), (40, 2.0210754, 5e-5), (60, 2.0002978, 2e-5), (120, 1.9799304, 3e-6)],
)
def test_t_quantile_past_the_table_is_the_cornish_fisher_value(df: int, quantile: float, tol: float) -> None:
    assert t_quantile_975(df) == pytest.approx(quantile, abs=tol)


def test_describe_with_no_value_and_with_two_values() -> None:
    empty = describe([])
    assert empty.n == 0 and all(math.isnan(v) for v in (empty.mean, empty.std, empty.ci95))
    two = describe([1.0, 3.0])
    assert (two.n, two.mean) == (2, 2.0)
    assert two.std == pytest.approx(math.sqrt(2))
    assert two.ci95 == pytest.approx(12.706)  # t_{0.975,1} · √2 / √2
    assert t_quantile_975(0) != t_quantile_975(0)  # NaN: no interval without a degree of freedom


@pytest.mark.parametrize("x", [0.0, 0.05, 0.3, 0.5, 0.7, 0.95, 1.0])
def test_incomplete_beta_against_its_closed_forms(x: float) -> None:
    assert incomplete_beta(1.0, 1.0, x) == pytest.approx(x, abs=1e-12)  # uniform
    assert incomplete_beta(3.0, 1.0, x) == pytest.approx(x**3, abs=1e-12)  # I_x(a, 1) = x^a
    assert incomplete_beta(1.0, 4.0, x) == pytest.approx(1 - (1 - x) ** 4, abs=1e-12)  # I_x(1, b)
    assert incomplete_beta(2.5, 2.5, 0.5) == pytest.approx(0.5, abs=1e-12)  # symmetry


def test_two_sided_p_edges() -> None:
    assert math.isnan(t_two_sided_p(math.nan, 3)) and math.isnan(t_two_sided_p(2.0, 0))
    assert t_two_sided_p(math.inf, 3) == 0.0 and t_two_sided_p(-math.inf, 3) == 0.0
    assert t_two_sided_p(0.0, 3) == pytest.approx(1.0)


def test_holm_caps_adjusted_p_values_at_one() -> None:
    # 2·0.6 = 1.2 → 1; 1·0.7 = 0.7 → the running maximum keeps 1
    assert holm([0.7, 0.6]) == [1.0, 1.0]


def test_two_seeds_give_a_verdict_one_seed_does_not() -> None:
    two = paired("a", {0: 0.910, 1: 0.921}, "b", {0: 0.900, 1: 0.910})
    assert two is not None and two.diff.n == 2 and (two.a, two.b) == ("a", "b")
    assert verdict(two, 0.01, resolution=0.005) == "differs"
    assert verdict(two, 0.05, resolution=0.005) != "differs"  # p equal to alpha: not below it
    one = paired("a", {0: 0.9, 1: 0.8}, "b", {1: 0.7})
    assert one is not None and verdict(one, 0.0, resolution=0.005) == "not resolved (n < 2)"


def test_an_interval_that_leaves_the_resolution_band_on_one_side_is_not_resolved() -> None:
    # differences 0, 0.002, 0.004: mean 0.002, std 0.002, CI 0.002 ± 4.303·0.002/√3 = [-0.00297, +0.00697]
    comp = paired("a", {0: 0.900, 1: 0.902, 2: 0.904}, "b", {0: 0.9, 1: 0.9, 2: 0.9})
    assert comp is not None and comp.diff.low == pytest.approx(0.002 - 4.303 * 0.002 / math.sqrt(3))
    assert verdict(comp, 1.0, resolution=0.005) == "not resolved"  # low inside ±0.5 points, high outside
    assert verdict(comp, 1.0, resolution=0.0075) == "within ±0.75"
