import math

import pytest

from cnnbench.bench.stats import describe, paired, t_quantile_975


def test_describe_against_hand_computed_values() -> None:
    s = describe([1.0, 2.0, 3.0, 4.0])
    assert s.n == 4 and s.mean == 2.5
    assert s.std == pytest.approx(math.sqrt(5 / 3))  # sample std, ddof=1
    assert s.ci95 == pytest.approx(3.182 * math.sqrt(5 / 3) / 2)  # t_{0.975,3} · s / √n
    one = describe([0.9])
    assert one.mean == 0.9 and math.isnan(one.std) and math.isnan(one.ci95)


def test_t_quantiles() -> None:
    assert t_quantile_975(1) == 12.706 and t_quantile_975(2) == 4.303 and t_quantile_975(30) == 2.042
    assert t_quantile_975(60) == pytest.approx(2.000, abs=2e-3)
    assert t_quantile_975(120) == pytest.approx(1.980, abs=2e-3)


def test_paired_comparison_uses_common_seeds_and_flags_real_differences() -> None:
    a = {0: 0.990, 1: 0.991, 2: 0.992, 3: 0.5}
    b = {0: 0.980, 1: 0.982, 2: 0.981}
    comp = paired("max", a, "avg", b)
    assert comp is not None and comp.diff.n == 3
    assert comp.diff.mean == pytest.approx((0.010 + 0.009 + 0.011) / 3)
    assert comp.significant
    noisy = paired("x", {0: 0.9, 1: 0.8, 2: 0.95}, "y", {0: 0.85, 1: 0.9, 2: 0.9})
    assert noisy is not None and not noisy.significant
    assert paired("x", {0: 1.0}, "y", {1: 1.0}) is None
