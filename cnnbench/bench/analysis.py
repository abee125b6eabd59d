"""The numbers behind a report, in one :class:`Analysis`: the rows, each cell summarized, what was
planned, which metrics duplicate each other, which cells sit near chance, the questions' answers and
the exploratory family. No markdown and no plotting here: :mod:`~cnnbench.bench.report` writes the
files, :mod:`~cnnbench.bench.plots` draws the figures; both read an :class:`Analysis`.

The pieces: :mod:`~cnnbench.bench.rows` (loading), :mod:`~cnnbench.bench.metrics` (what each metric
means, folds, chance), :mod:`~cnnbench.bench.family` (exploratory comparisons),
:mod:`~cnnbench.bench.questions` (the answers). Their names used by the report are re-exported here.

Example:
    >>> rows = [{"run_id": "a-s0", "status": "ok", "seed": 0, "test_acc": 0.5}]
    >>> cell_id(rows[0]), [r["seed"] for r in ok(rows)]
    ('a', [0])
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cnnbench.bench.axes import COMPARED, COORDS, REFERENCE
from cnnbench.bench.family import ALPHA, Row, by_seed, comparisons, family
from cnnbench.bench.metrics import (
    CHANCE_MARGIN,
    GROUPS,
    IDENTICAL_TOLERANCE,
    METRICS,
    NEW_METRICS,
    OTHER_SUMMARY,
    PER_K,
    Fold,
    Metric,
    chance_level,
    extra_metrics,
    folded_columns,
    identical_metrics,
    is_fraction,
    metric_group,
    near_chance,
    needs_accuracy,
    per_k_columns,
)
from cnnbench.bench.questions import Answer, Question, answer
from cnnbench.bench.rows import (
    BASE_FIELDS,
    cell_id,
    coordinates,
    flatten,
    load_rows,
    not_run,
    ok,
    planned_runs,
    present,
    read_grid,
    read_results_csv,
    varying,
)
from cnnbench.bench.stats import describe

__all__ = [
    "ALPHA",
    "AXES",
    "BASE_FIELDS",
    "CHANCE_MARGIN",
    "COORDS",
    "GROUPS",
    "IDENTICAL_TOLERANCE",
    "METRICS",
    "NEW_METRICS",
    "OTHER_SUMMARY",
    "PER_K",
    "REFERENCE",
    "Analysis",
    "Fold",
    "Metric",
    "Row",
    "analyse",
    "by_seed",
    "cell_id",
    "chance_level",
    "comparisons",
    "coordinates",
    "extra_metrics",
    "family",
    "flatten",
    "folded_columns",
    "identical_metrics",
    "is_fraction",
    "load_rows",
    "metric_group",
    "near_chance",
    "needs_accuracy",
    "not_run",
    "ok",
    "per_k_columns",
    "planned_runs",
    "present",
    "read_grid",
    "read_results_csv",
    "summarize_cells",
    "varying",
]

AXES = COMPARED
"""The axes whose values the exploratory tables compare (those with a ``reference`` level)."""


def summarize_cells(
    rows: list[dict[str, Any]], coords: tuple[str, ...] = COORDS, planned: list[dict[str, Any]] | None = None
) -> list[dict[str, Any]]:
    """One row per cell: params, MACs, n ok / n planned, and mean, std, 95% CI of each metric over ``ok`` seeds."""
    keys = [m.key for m in METRICS] + extra_metrics(rows, coords) + list(OTHER_SUMMARY) + per_k_columns(rows)
    plan: dict[str, int] = defaultdict(int)
    for p in planned or []:
        plan[cell_id(p)] += 1
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        groups[tuple(r.get(c) for c in coords)].append(r)
    out = []
    for key, members in groups.items():
        good = ok(members)
        row: dict[str, Any] = dict(zip(coords, key))
        row["cell"] = cell_id(members[0])
        row["n"], row["n_ok"] = len(members), len(good)
        row["n_planned"] = plan.get(row["cell"]) if planned is not None else None
        row["statuses"] = ",".join(sorted({r["status"] for r in members}))
        row["params"] = next((r["params"] for r in members if r.get("params") is not None), None)
        row["macs"] = next((r["macs"] for r in members if r.get("macs") is not None), None)
        for metric in keys:
            s = describe([float(r[metric]) for r in good if r.get(metric) is not None])
            row[f"{metric}_mean"], row[f"{metric}_std"], row[f"{metric}_ci95"] = s.mean, s.std, s.ci95
        out.append(row)
    return out


@dataclass
class Analysis:
    """Everything the markdown and the figures are drawn from."""

    name: str
    rows: list[dict[str, Any]]
    source: str
    coords: tuple[str, ...]
    planned: list[dict[str, Any]] | None
    cells: list[dict[str, Any]]
    folds: list[Fold]
    chance: float | None
    low_cells: set[str]
    metrics: list[Metric]
    family: list[Row]
    answers: list[Answer]
    resolution: float
    chance_margin: float
    groups: dict[str, list[str]]  # extra columns shown in tables of their own (metrics.GROUPS)


def analyse(
    out: Path,
    name: str | None = None,
    questions: list[Question] | None = None,
    resolution: float = 0.005,
    chance_margin: float = CHANCE_MARGIN,
) -> Analysis:
    """Load the folder and compute every number the report shows."""
    rows, source = load_rows(out)
    grid = read_grid(out)
    coords = coordinates(rows, grid)
    planned = planned_runs(grid)
    cells = summarize_cells(rows, coords, planned)
    folds = identical_metrics(rows)
    folded = folded_columns(folds)
    chance = chance_level(grid)
    low = near_chance(cells, chance, chance_margin)
    known = [m for m in METRICS if present(rows, m.key) and m.key not in folded]
    extras = [k for k in extra_metrics(rows, coords) if k not in folded]
    meaning = "recorded by the cell (no description in this version of the report)"
    extra = [Metric(k, k.replace("_", " "), meaning) for k in extras if metric_group(k) is None]
    groups = {g: [k for k in extras if metric_group(k) == g] for g, _, _ in GROUPS}
    good = ok(rows)
    axes = [a for a in AXES if len({str(r[a]) for r in good}) > 1]
    fam = family(rows, axes, [m.key for m in known], coords, low)
    answers = [answer(q, rows, coords, planned, low) for q in questions or []]
    name = name or (grid or {}).get("name") or next((str(r["grid"]) for r in rows if r.get("grid")), out.name)
    return Analysis(
        str(name),
        rows,
        source,
        coords,
        planned,
        cells,
        folds,
        chance,
        low,
        [*known, *extra],
        fam,
        answers,
        resolution,
        chance_margin,
        groups,
    )
