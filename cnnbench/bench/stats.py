"""Small, dependency-free statistics for a handful of seeds.

Example:
    >>> s = describe([0.98, 0.99, 1.00])
    >>> round(s.mean, 4), round(s.std, 4), round(s.ci95, 4)
    (0.99, 0.01, 0.0248)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# two-sided 95% quantiles of Student's t (t_{0.975, df}), df = 1..30
_T975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip


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


@dataclass(frozen=True)
class Comparison:
    """A paired comparison (same seeds) of two settings: mean difference A − B and its CI."""

    a: str
    b: str
    diff: Summary

    @property
    def significant(self) -> bool:
        """True when the 95% CI of the difference excludes 0."""
        return self.diff.n >= 2 and not (self.diff.low <= 0.0 <= self.diff.high)


def paired(a_label: str, a: dict[int, float], b_label: str, b: dict[int, float]) -> Comparison | None:
    """Compare two settings over their common seeds; None without common seeds."""
    seeds = sorted(set(a) & set(b))
    if not seeds:
        return None
    return Comparison(a_label, b_label, describe([a[s] - b[s] for s in seeds]))
