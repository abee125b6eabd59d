"""Small, dependency-free statistics for a handful of seeds.

Paired differences over seeds with Student-t intervals and p-values, and the two usual
multiple-comparison adjustments: Holm (controls the family-wise error rate: the chance of
even one false "differs") and Benjamini–Hochberg (controls the expected share of false
discoveries among the differences reported).

Example:
    >>> s = describe([0.98, 0.99, 1.00])
    >>> round(s.mean, 4), round(s.std, 4), round(s.ci95, 4)
    (0.99, 0.01, 0.0248)
    >>> [round(p, 3) for p in holm([0.01, 0.04, 0.03])]
    [0.03, 0.06, 0.06]
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# two-sided 95% quantiles of Student's t (t_{0.975, df}), df = 1..30
_T975 = (
    12.706,
    4.303,
    3.182,
    2.776,
    2.571,
    2.447,
    2.365,
    2.306,
    2.262,
    2.228,
    2.201,
    2.179,
    2.160,
    2.145,
    2.131,
    2.120,
    2.110,
    2.101,
    2.093,
    2.086,
    2.080,
    2.074,
    2.069,
    2.064,
    2.060,
    2.056,
    2.052,
    2.048,
    2.045,
    2.042,
)


def t_quantile_975(df: int) -> float:
    """t_{0.975, df}: the table up to 30, a Cornish-Fisher expansion beyond (error < 1e-3)."""
    if df < 1:
        return math.nan
    if df <= len(_T975):
        return _T975[df - 1]
    z = 1.959964
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


@dataclass(frozen=True)
class Summary:
    """Mean, sample standard deviation and the half-width of the 95% confidence interval."""

    n: int
    mean: float
    std: float
    ci95: float

    @property
    def low(self) -> float:
        return self.mean - self.ci95

    @property
    def high(self) -> float:
        return self.mean + self.ci95


def describe(values: list[float]) -> Summary:
    """Summary of ``values`` (NaN std and CI for fewer than two values)."""
    n = len(values)
    if n == 0:
        return Summary(0, math.nan, math.nan, math.nan)
    mean = sum(values) / n
    if n < 2:
        return Summary(n, mean, math.nan, math.nan)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return Summary(n, mean, std, t_quantile_975(n - 1) * std / math.sqrt(n))


def _betacf(a: float, b: float, x: float) -> float:
    # continued fraction of the incomplete beta function (modified Lentz; Numerical Recipes 6.4)
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        for num in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + num / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-14:
            break
    return h


def incomplete_beta(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b), 0 ≤ x ≤ 1."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def t_two_sided_p(t: float, df: int) -> float:
    """P(|T| ≥ |t|) for Student's t with ``df`` degrees of freedom.

    Example:
        >>> round(t_two_sided_p(2.776, 4), 3)
        0.05
    """
    if df < 1 or math.isnan(t):
        return math.nan
    if math.isinf(t):
        return 0.0
    return incomplete_beta(df / 2.0, 0.5, df / (df + t * t))


def holm(pvalues: list[float]) -> list[float]:
    """Holm step-down adjusted p-values (same order as given; NaN stays NaN, not counted)."""
    idx = sorted((i for i, p in enumerate(pvalues) if not math.isnan(p)), key=lambda i: pvalues[i])
    m, out, running = len(idx), [math.nan] * len(pvalues), 0.0
    for rank, i in enumerate(idx):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        out[i] = running
    return out


def benjamini_hochberg(pvalues: list[float]) -> list[float]:
    """Benjamini–Hochberg adjusted p-values (q-values), same order; NaN stays NaN."""
    idx = sorted((i for i, p in enumerate(pvalues) if not math.isnan(p)), key=lambda i: pvalues[i])
    m, out, running = len(idx), [math.nan] * len(pvalues), 1.0
    for rank in range(m - 1, -1, -1):
        i = idx[rank]
        running = min(running, m * pvalues[i] / (rank + 1))
        out[i] = running
    return out


@dataclass(frozen=True)
class Comparison:
    """A paired comparison (same seeds) of two settings: mean difference A − B and its CI."""

    a: str
    b: str
    diff: Summary

    @property
    def significant(self) -> bool:
        """True when the uncorrected 95% CI of the difference excludes 0."""
        return self.diff.n >= 2 and not (self.diff.low <= 0.0 <= self.diff.high)

    @property
    def p(self) -> float:
        """Two-sided p-value of the paired t-test (NaN below two seeds)."""
        d = self.diff
        if d.n < 2 or math.isnan(d.std):
            return math.nan
        if d.std == 0.0:
            return 1.0 if d.mean == 0.0 else 0.0
        return t_two_sided_p(d.mean / (d.std / math.sqrt(d.n)), d.n - 1)


def verdict(comp: Comparison, adjusted_p: float, resolution: float, alpha: float = 0.05) -> str:
    """What a reader may conclude: ``differs`` (adjusted p < alpha), ``uncorrected only``
    (the raw CI excludes 0, the adjusted test does not), ``within ±resolution`` (the whole
    CI lies inside ±resolution: no difference that large), else ``not resolved``."""
    d = comp.diff
    if d.n < 2 or math.isnan(d.ci95):
        return "not resolved (n < 2)"
    if adjusted_p < alpha:
        return "differs"
    if comp.significant:
        return "uncorrected only"
    if -resolution <= d.low and d.high <= resolution:
        return f"within ±{resolution * 100:g}"
    return "not resolved"


def paired(a_label: str, a: dict[int, float], b_label: str, b: dict[int, float]) -> Comparison | None:
    """Compare two settings over their common seeds; None without common seeds."""
    seeds = sorted(set(a) & set(b))
    if not seeds:
        return None
    return Comparison(a_label, b_label, describe([a[s] - b[s] for s in seeds]))


def t_critical(alpha: float, df: int) -> float:
    """The two-sided critical value of Student's t: P(|T| ≥ t) = ``alpha`` (bisection on :func:`t_two_sided_p`).

    Example:
        >>> round(t_critical(0.05, 4), 3), round(t_critical(0.01, 4), 3)
        (2.776, 4.604)
    """
    if df < 1 or not 0.0 < alpha < 1.0:
        return math.nan
    low, high = 0.0, 1.0
    while t_two_sided_p(high, df) > alpha:
        low, high = high, high * 2.0
    for _ in range(200):
        mid = (low + high) / 2.0
        low, high = (mid, high) if t_two_sided_p(mid, df) > alpha else (low, mid)
        if high - low < 1e-10 * max(1.0, high):
            break
    return (low + high) / 2.0


def holm_levels(pvalues: list[float], alpha: float = 0.05) -> list[float]:
    """The two-sided level at which each comparison's interval is drawn so that it agrees with Holm.

    Sorted by p, the i-th comparison (0-based) is tested at ``alpha / (m - i)``; Holm stops at the
    first rank f it does not reject, and every later comparison keeps that rank's level. An interval
    at the returned level therefore excludes 0 exactly when Holm rejects, and the same interval is
    used to call a difference practically negligible (inside ±δ): one adjusted level for both.
    NaN p-values stay NaN and are not counted in m.

    Example:
        >>> holm_levels([0.001, 0.04, 0.03])  # 0.001 < 0.05/3 rejected; 0.03 > 0.05/2 stops: both at 0.025
        [0.016666666666666666, 0.025, 0.025]
    """
    idx = sorted((i for i, p in enumerate(pvalues) if not math.isnan(p)), key=lambda i: pvalues[i])
    m, out, stopped = len(idx), [math.nan] * len(pvalues), None
    for rank, i in enumerate(idx):
        if stopped is None and pvalues[i] > alpha / (m - rank):
            stopped = rank
        out[i] = alpha / (m - (rank if stopped is None else stopped))
    return out


def half_width(diff: Summary, alpha: float) -> float:
    """Half-width of the two-sided (1 − ``alpha``) t-interval of a mean (NaN below two values)."""
    if diff.n < 2 or math.isnan(diff.std) or math.isnan(alpha):
        return math.nan
    return t_critical(alpha, diff.n - 1) * diff.std / math.sqrt(diff.n)


def seeds_to_resolve(mean: float, std: float, delta: float, alpha: float, limit: int = 100_000) -> int | None:
    """The smallest n whose (1 − ``alpha``) interval, with this mean and SD, would resolve the difference.

    Resolved means the interval excludes 0 (half-width < |mean|) or lies inside ±``delta``
    (half-width < delta − |mean|): n is the smallest n ≥ 2 with
    ``t_crit(alpha, n − 1) · std / √n < max(|mean|, delta − |mean|)``. None when ``std`` is unknown
    or more than ``limit`` seeds would be needed.

    Example:
        >>> seeds_to_resolve(mean=0.0, std=1.0, delta=1.0, alpha=0.05)  # t·1/√n < 1: n = 7 (2.447/√7 = 0.92)
        7
    """
    target = max(abs(mean), delta - abs(mean))
    if math.isnan(std) or math.isnan(mean) or target <= 0:
        return None
    if std == 0.0:
        return 2
    n = 2
    while t_critical(alpha, n - 1) * std / math.sqrt(n) >= target:
        n = n * 2 if n < 64 else n + max(1, n // 8)
        if n > limit:
            return None
    low = max(2, n // 2)  # n overshoots after doubling: search back for the smallest
    while low < n:
        mid = (low + n) // 2
        low, n = (mid + 1, n) if t_critical(alpha, mid - 1) * std / math.sqrt(mid) >= target else (low, mid)
    return n
