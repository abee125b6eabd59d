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


@pytest.mark.parametrize(
    ("t", "df", "p"),
    # printed t-table quantiles: t_{0.975} → two-sided 0.05, t_{0.995} → 0.01; t = 1 with df = 1 is 0.5 exactly
    [(2.776, 4, 0.05), (4.604, 4, 0.01), (4.303, 2, 0.05), (9.925, 2, 0.01), (2.042, 30, 0.05), (1.0, 1, 0.5)],
)
def test_two_sided_p_values_match_t_tables(t: float, df: int, p: float) -> None:
    from cnnbench.bench.stats import t_two_sided_p

    assert t_two_sided_p(t, df) == pytest.approx(p, abs=2e-4)
    assert t_two_sided_p(-t, df) == pytest.approx(p, abs=2e-4)


def test_holm_and_benjamini_hochberg_against_hand_computation() -> None:
    from cnnbench.bench.stats import benjamini_hochberg, holm

    p = [0.01, 0.04, 0.03, 0.005, math.nan]
    # Holm: sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 → 0.02, 0.03, 0.06, 0.04 → running max
    assert holm(p)[:4] == pytest.approx([0.03, 0.06, 0.06, 0.02]) and math.isnan(holm(p)[4])
    # BH: m·p/rank = 0.02, 0.02, 0.04, 0.04 (ranks 1-4) → running min from the top
    assert benjamini_hochberg(p)[:4] == pytest.approx([0.02, 0.04, 0.04, 0.02])


def test_verdicts_say_not_resolved_for_wide_intervals() -> None:
    from cnnbench.bench.stats import verdict

    wide = paired("x", {0: 0.9, 1: 0.8, 2: 0.95}, "y", {0: 0.85, 1: 0.9, 2: 0.9})
    narrow = paired("x", {0: 0.901, 1: 0.900, 2: 0.902}, "y", {0: 0.900, 1: 0.901, 2: 0.901})
    big = paired("x", {0: 0.99, 1: 0.991, 2: 0.992}, "y", {0: 0.98, 1: 0.982, 2: 0.981})
    assert wide is not None and narrow is not None and big is not None
    assert verdict(wide, 1.0, resolution=0.005) == "not resolved"
    assert verdict(narrow, 1.0, resolution=0.005) == "within ±0.5"
    assert verdict(big, 0.01, resolution=0.005) == "differs"
    assert verdict(big, 0.2, resolution=0.005) == "uncorrected only"


@pytest.mark.parametrize("df", [1, 2, 4, 9, 30, 200])
@pytest.mark.parametrize("alpha", [0.05, 0.025, 0.05 / 12, 0.001])
def test_t_critical_equals_scipy(alpha: float, df: int) -> None:
    from cnnbench.bench.stats import t_critical

    t = pytest.importorskip("scipy.stats").t
    assert t_critical(alpha, df) == pytest.approx(t.ppf(1 - alpha / 2, df), rel=1e-6)


def test_holm_levels_agree_with_holm_decisions() -> None:
    from cnnbench.bench.stats import holm, holm_levels

    # sorted 0.001 (α/4 = 0.0125: rejected), 0.01 (α/3 = 0.0167: rejected), 0.03 (α/2 = 0.025: stops), 0.04
    p = [0.03, 0.001, 0.04, 0.01, math.nan]
    levels = holm_levels(p)
    assert levels[:4] == pytest.approx([0.025, 0.0125, 0.025, 0.05 / 3]) and math.isnan(levels[4])
    # an interval at its level excludes 0 exactly when Holm rejects: p < level ⇔ Holm p < α
    assert [pi < lv for pi, lv in zip(p[:4], levels[:4])] == [h < 0.05 for h in holm(p)[:4]]


def test_seeds_to_resolve_by_hand() -> None:
    from cnnbench.bench.stats import seeds_to_resolve

    t = pytest.importorskip("scipy.stats").t
    for mean, sd, delta, alpha in [
        (0.0, 1.0, 1.0, 0.05),
        (0.3, 0.4, 1.0, 0.025),
        (1.0, 3.6, 1.0, 0.025),
        (2.0, 1.0, 1.0, 0.01),
    ]:
        n = 2
        while t.ppf(1 - alpha / 2, n - 1) * sd / math.sqrt(n) >= max(abs(mean), delta - abs(mean)):
            n += 1
        assert seeds_to_resolve(mean, sd, delta, alpha) == n
    assert seeds_to_resolve(0.0, math.nan, 1.0, 0.05) is None
