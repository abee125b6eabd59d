"""The exploratory family: every pair of values of each axis compared, other coordinates equal,
paired by seed, with Holm and Benjamini–Hochberg adjusted p-values and Holm-consistent intervals.

Each comparison reads "other − reference", the reference being the axis's ``reference`` level
declared with the axes (:data:`cnnbench.bench.axes.REFERENCE`: max pooling, valid padding, ...).

Example:
    >>> rows = [{"run_id": f"m-{p}-s{s}", "model_label": "m", "pool": p, "seed": s, "status": "ok",
    ...          "test_acc": 0.9 + 0.01 * s + (0.02 if p == "avg" else 0)} for p in ("avg", "max") for s in range(3)]
    >>> [(r.comp.a, r.comp.b, round(r.comp.diff.mean, 3)) for r in family(rows, ["pool"], ["test_acc"])]
    [('avg', 'max', 0.02)]
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Any

from cnnbench.bench.axes import COORDS, REFERENCE
from cnnbench.bench.metrics import needs_accuracy
from cnnbench.bench.rows import cell_id, ok
from cnnbench.bench.stats import Comparison, benjamini_hochberg, half_width, holm, holm_levels, paired

ALPHA = 0.05


@dataclass
class Row:
    """One paired comparison of the exploratory family, with its adjusted p-values and interval."""

    axis: str
    metric: str
    context: dict[str, str]
    comp: Comparison
    size_a: tuple[Any, Any]
    size_b: tuple[Any, Any]
    holm_p: float = math.nan
    bh_p: float = math.nan
    level: float = math.nan  # the two-sided level of the Holm-consistent interval
    half: float = math.nan  # its half-width

    @property
    def low(self) -> float:
        return self.comp.diff.mean - self.half

    @property
    def high(self) -> float:
        return self.comp.diff.mean + self.half


def by_seed(
    rows: list[dict[str, Any]], metric: str, where: dict[str, str], skip: AbstractSet[str] = frozenset()
) -> dict[int, float]:  # type: ignore[assignment]
    return {
        int(r["seed"]): float(r[metric])
        for r in ok(rows)
        if r.get(metric) is not None and cell_id(r) not in skip and all(str(r.get(k)) == v for k, v in where.items())
    }


def comparisons(
    rows: list[dict[str, Any]],
    axis: str,
    metric: str = "test_acc",
    coords: tuple[str, ...] = COORDS,
    skip: AbstractSet[str] = frozenset(),
) -> list[Row]:
    """Paired comparisons between the values of ``axis``, every other coordinate equal (cells in ``skip`` left out)."""
    fixed = [c for c in coords if c != axis]
    good = ok(rows)
    sizes = {tuple(str(r.get(c)) for c in coords): (r.get("params"), r.get("macs")) for r in good}
    out = []
    for context in sorted({tuple(str(r.get(c)) for c in fixed) for r in good}):
        where = dict(zip(fixed, context))
        values = list(dict.fromkeys(str(r[axis]) for r in good if all(str(r.get(k)) == v for k, v in where.items())))
        ref, order = REFERENCE.get(axis), list(values)
        values.sort(key=lambda v: (v != ref, order.index(v)))  # reference first: rows read "other − reference"
        for b, a in itertools.combinations(values, 2):
            comp = paired(
                a, by_seed(rows, metric, {**where, axis: a}, skip), b, by_seed(rows, metric, {**where, axis: b}, skip)
            )
            if comp is None:
                continue
            key_a = tuple(where.get(c, a) if c != axis else a for c in coords)
            key_b = tuple(where.get(c, b) if c != axis else b for c in coords)
            out.append(Row(axis, metric, where, comp, sizes.get(key_a, (None, None)), sizes.get(key_b, (None, None))))
    return out


def family(
    rows: list[dict[str, Any]],
    axes: list[str],
    metrics: list[str],
    coords: tuple[str, ...] = COORDS,
    skip: AbstractSet[str] = frozenset(),
    alpha: float = ALPHA,  # type: ignore[assignment]
) -> list[Row]:
    """Every exploratory comparison, with Holm and BH adjusted p-values and Holm-consistent intervals.

    ``skip`` (cells near chance) is left out of the comparisons of consistency metrics only.
    """
    out = [
        c
        for axis in axes
        for metric in metrics
        for c in comparisons(rows, axis, metric, coords, skip if needs_accuracy(metric) else set())
    ]
    ps = [c.comp.p for c in out]
    for c, h, q, level in zip(out, holm(ps), benjamini_hochberg(ps), holm_levels(ps, alpha)):
        c.holm_p, c.bh_p, c.level, c.half = h, q, level, half_width(c.comp.diff, level)
    return out
