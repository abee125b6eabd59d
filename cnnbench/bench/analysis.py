"""The numbers behind a report: results loaded into rows, cells summarized, what was planned,
which metrics duplicate each other, which cells sit near chance, and the exploratory family of
paired comparisons. No markdown and no plotting here (see ``report`` and ``plots``).

Example:
    >>> rows = [{"run_id": "a-s0", "status": "ok", "seed": 0, "test_acc": 0.5}]
    >>> cell_id(rows[0]), [r["seed"] for r in ok(rows)]
    ('a', [0])
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import itertools
import json
import math
import re
from collections import defaultdict
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cnnbench.bench.stats import Comparison, benjamini_hochberg, describe, half_width, holm, holm_levels, paired

COORDS = ("model_label", "pool", "padding", "padding_mode", "precision", "devices", "augment")
AXES = ("pool", "padding", "augment", "precision")  # the axes whose values the exploratory tables compare
REFERENCE = {"pool": "max", "padding": "valid", "augment": "none", "precision": "32-true"}
BASE_FIELDS = ("run_id", "grid", "model_label", "pool", "padding", "padding_mode", "precision", "devices", "model", "seed",
               "status", "test_acc", "test_loss", "best_val_acc", "train_time_s", "images_per_s", "peak_memory_mb",
               "params", "macs", "epochs")  # fmt: skip
LEGACY_COLUMNS = {"shift_consistency": "diag_consistency", "border_acc": "crop_border_acc"}
#: columns that are neither coordinates nor metrics to compare
NOT_METRICS = {*BASE_FIELDS, "augment", "augment_recorded", "error", "cell", "test_loss", "best_val_acc", "images_per_s",
               "peak_memory_mb", "edge_lost_ink", "edge_shift_px", "threads", "data_shared", "launcher", "total_stride",
               "translation_shift_px"}  # fmt: skip
FILLS = ("zero", "circular", "reflect", "replicate", "background")  # variants of one metric that may coincide
IDENTICAL_TOLERANCE = 0.01  # a fill variant within 1 point of another on every run is the same metric
CHANCE_MARGIN = 0.10  # cells whose accuracy is within 10 points of chance are flagged
ALPHA = 0.05
PER_K = re.compile(r"_k\d+$")


@dataclass(frozen=True)
class Metric:
    key: str
    label: str
    meaning: str
    legacy: bool = False


METRICS = (
    Metric("test_acc", "test acc", "top-1 accuracy on the clean test set"),
    Metric("consistency_zero", "consistency (zero)",
           "shift consistency as Zhang 2019 defines it: the probability that two copies of a test image, each shifted "
           "by an independent random offset (uniform in [-k, k] on both axes, both signs), get the same top-1 class; "
           "uncovered pixels are 0; mean over the k measured"),
    Metric("consistency_circular", "consistency (circular)",
           "the same with circular shifts (content wraps around), Zhang's variant for CIFAR"),
    Metric("edge_acc", "edge acc",
           "accuracy with each image moved until the bounding box of its nonzero pixels touches an edge or corner "
           "(8 directions, mean); no ink leaves the frame (lost-ink fraction below)"),
    Metric("translation_acc", "translation acc",
           "large-translation probe (formerly the edge probe): accuracy with each image moved until the bounding box "
           "of its ink touches an edge or corner (8 directions, mean; no ink lost); a large translation, not a test of "
           "border information"),
    Metric("border_penalty", "border penalty",
           "on border-placed digits (half flush with an edge or corner, half centred, in training and test): accuracy "
           "on centred digits − accuracy on border digits; lower = less lost at the border"),
    Metric("diag_consistency", "legacy diag consistency",
           "LEGACY, not Zhang's definition: share of images whose class is unchanged between the original and one "
           "(+s, +s) down-right zero-fill shift, mean over s", legacy=True),
    Metric("crop_border_acc", "legacy crop border acc",
           "LEGACY: accuracy with the content pushed a quarter of the side toward each edge/corner; this crops "
           "digits (ink is lost; the fraction was not recorded), so it does not isolate edge information", legacy=True),
)  # fmt: skip
NEW_METRICS = {"consistency_zero": "Zhang 2019 shift consistency (zero-fill)",
               "consistency_circular": "Zhang 2019 shift consistency (circular)",
               "shift_acc_zero_k": "accuracy under random shift, per k",
               "edge_acc": "edge probe without cropping (and its lost-ink fraction)"}  # fmt: skip
OTHER_SUMMARY = (
    "best_val_acc",
    "images_per_s",
    "train_time_s",
    "edge_lost_ink",
    "edge_shift_px",
    "translation_shift_px",
)
#: extra columns shown in tables of their own rather than in the cells table (prefix or suffix → title)
GROUPS = (
    ("stride", "Shift consistency below and from the network's total stride",
     "mean consistency over the offsets k below the network's total stride (where pooling can matter) and over those "
     "at or above it (where the fully connected head decides)"),
    ("border", "Border placement: accuracy by stratum and with the outer frame blanked",
     "acc_centred / acc_border: accuracy on centred / edge-placed digits; acc_border_blank{b}: border digits with the "
     "outer b px set to background at test time, blank{b}_drop = acc_border − that; acc_<direction>: per edge or corner"),
)  # fmt: skip
STRATA = ("left", "right", "top", "bottom", "top_left", "top_right", "bottom_left", "bottom_right")


def metric_group(column: str) -> str | None:
    """The table an extra column belongs to (None: the cells table)."""
    if column.endswith(("_below_stride", "_from_stride")):
        return "stride"
    if column.startswith(("acc_centred", "acc_border", "blank")) or column in {f"acc_{s}" for s in STRATA}:
        return "border"
    return None


# ---------------------------------------------------------------------------------- loading
def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def flatten(result: dict[str, Any], default_augment: str = "standard") -> dict[str, Any]:
    """One CSV row: coordinates, metrics, and robustness metrics spread into columns.

    Top-level scalars a newer cell records (an extra axis) and the scalar columns of its ``metrics``
    block (border penalty, consistency below/from the stride, ...) become columns too, so the report
    handles metrics it does not know by name.
    """
    row: dict[str, Any] = {k: result.get(k) for k in BASE_FIELDS}
    row["augment"] = result.get("augment") or default_augment
    row["augment_recorded"] = "augment" in result
    for k, v in result.items():  # extra axes and metrics of newer cells
        if k not in row and (isinstance(v, str) or _is_number(v)) and not k.startswith("t_") and not k.endswith("_s"):
            row[k] = v
    rob = result.get("robustness") or {}
    for fill, block in (rob.get("shift") or {}).items():
        for kind, prefix in (("consistency", "consistency"), ("acc", "shift_acc")):
            values = block.get(kind) or {}
            for k, v in sorted(values.items(), key=lambda kv: int(kv[0])):
                row[f"{prefix}_{fill}_k{k}"] = v
            if values and kind == "consistency":
                row[f"consistency_{fill}"] = sum(values.values()) / len(values)
    for k, v in (result.get("metrics") or {}).items():  # scalar columns a newer cell computes (border penalty, ...)
        if _is_number(v):
            row[k] = v
    edge = rob.get("edge") or {}
    if edge:
        row["edge_acc"] = edge.get("acc_mean")
        row["edge_lost_ink"] = edge.get("lost_ink")
        px = list((edge.get("mean_shift_px") or {}).values())
        row["edge_shift_px"] = sum(px) / len(px) if px else None
    if "shift_consistency" in rob:  # results written before Zhang's definition
        for s, v in rob["shift_consistency"].items():
            row[f"diag_consistency_{s}"] = v
        for s, v in (rob.get("shift_acc") or {}).items():
            row[f"diag_shift_acc_{s}"] = v
        values = list(rob["shift_consistency"].values())
        row["diag_consistency"] = sum(values) / len(values) if values else None
        row["crop_border_acc"] = rob.get("border_acc_mean")
    row["error"] = (result.get("error") or "")[:300]
    return row


def _number(text: str) -> Any:
    if text == "":
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return {"True": True, "False": False}.get(text, text)


def read_results_csv(path: Path, default_augment: str = "standard") -> list[dict[str, Any]]:
    """Rows of a ``results.csv`` (this version's or an older one, whose columns are renamed)."""
    with path.open(newline="") as fh:
        raw = list(csv.DictReader(fh))
    rows = []
    for r in raw:
        row = {k: _number(v) for k, v in r.items()}
        for k in [k for k in row if k.startswith(("shift_consistency_", "shift_acc_")) and k[-1].isdigit()]:
            if k.split("_")[-1].isdigit():  # older names (shift_acc_1): one diagonal shift, not Zhang's
                row["diag_" + k.removeprefix("shift_") if "consistency" in k else "diag_" + k] = row.pop(k)
        for old, new in LEGACY_COLUMNS.items():
            if old in row:
                row[new] = row.pop(old)
        row["augment_recorded"] = row.get("augment") is not None
        row["augment"] = row.get("augment") or default_augment
        row["error"] = row.get("error") or ""
        rows.append(row)
    return rows


def read_grid(out: Path) -> dict[str, Any] | None:
    """The grid spec saved beside the results (``grid.json``), or None."""
    with contextlib.suppress(OSError, ValueError):
        raw = json.loads((out / "grid.json").read_text())
        return raw if isinstance(raw, dict) else None
    return None


def load_rows(out: Path) -> tuple[list[dict[str, Any]], str]:
    """The rows of a results folder and where they came from (``results/`` or ``results.csv``)."""
    from cnnbench.bench.runner import load_results

    default_augment = str(((read_grid(out) or {}).get("data") or {}).get("augment", "standard"))
    results = load_results(out)
    if results:
        return [flatten(r, default_augment) for r in results], "results"
    if (out / "results.csv").is_file():
        return read_results_csv(out / "results.csv", default_augment), "results.csv"
    raise ValueError(f"no results under {out / 'results'} and no {out / 'results.csv'}")


def cell_id(row: dict[str, Any]) -> str:
    """A run's cell: its run_id without the seed suffix."""
    return re.sub(r"-s\d+$", "", str(row["run_id"]))


def planned_runs(grid: dict[str, Any] | None) -> list[dict[str, Any]] | None:
    """Every run the saved grid spec plans (coordinates, seed, run_id), or None when it cannot be read."""
    if not grid:
        return None
    from cnnbench.bench.grid import GridSpec, ModelEntry, expand

    names = {f.name for f in dataclasses.fields(GridSpec)}
    try:
        kwargs = {k: v for k, v in grid.items() if k in names}
        kwargs["models"] = [ModelEntry(m["name"], dict(m.get("args") or {})) for m in grid["models"]]
        cells = expand(GridSpec(**kwargs))
    except (KeyError, TypeError, ValueError):
        return None
    return [{**c.to_dict(), "run_id": c.run_id} for c in cells]


def coordinates(rows: list[dict[str, Any]], grid: dict[str, Any] | None) -> tuple[str, ...]:
    """The report's coordinates: the usual axes plus any other axis of the grid that the rows record."""
    extra = [k for k, v in (grid or {}).items() if isinstance(v, list) and k not in ("models", "seeds", *COORDS)
             and any(k in r for r in rows)]  # fmt: skip
    return (*COORDS, *extra)


# ---------------------------------------------------------------------------------- cells
def ok(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in rows if r["status"] == "ok"]


def present(rows: list[dict[str, Any]], key: str) -> bool:
    return any(r.get(key) is not None for r in ok(rows))


def varying(rows: list[dict[str, Any]], coords: tuple[str, ...] = COORDS) -> list[str]:
    """The coordinates that take more than one value among the rows."""
    return [c for c in coords if len({str(r.get(c)) for r in rows}) > 1]


def is_fraction(metric: str) -> bool:
    """Metrics in [0, 1] (accuracies, consistencies, their differences), shown as percentage points."""
    return any(word in metric for word in ("acc", "consistency", "penalty", "lost_ink", "_drop"))


def per_k_columns(rows: list[dict[str, Any]]) -> list[str]:
    return sorted(
        {k for r in rows for k in r if k.startswith(("consistency_", "shift_acc_", "diag_")) and k[-1].isdigit()}
    )


def extra_metrics(rows: list[dict[str, Any]], coords: tuple[str, ...] = COORDS) -> list[str]:
    """Numeric columns the report does not know by name (e.g. consistency below the stride)."""
    known = {m.key for m in METRICS} | set(OTHER_SUMMARY) | set(per_k_columns(rows)) | NOT_METRICS | set(coords)
    keys = dict.fromkeys(k for r in ok(rows) for k, v in r.items() if _is_number(v) and k not in known)
    return [k for k in keys if not k.startswith(("diag_", "t_")) and not k.endswith("_s")]


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


def not_run(rows: list[dict[str, Any]], planned: list[dict[str, Any]] | None) -> dict[str, list[int]]:
    """Planned cells with seeds that have no result at all: cell → missing seeds."""
    done = {str(r["run_id"]) for r in rows}
    missing: dict[str, list[int]] = defaultdict(list)
    for p in planned or []:
        if p["run_id"] not in done:
            missing[cell_id(p)].append(int(p["seed"]))
    return dict(missing)


# ---------------------------------------------------------------------------------- folding, chance
@dataclass(frozen=True)
class Fold:
    """A metric variant (e.g. circular fill) equal to another on every run: shown once, as ``into``."""

    variant: str
    into: str
    columns: tuple[str, ...]
    largest: float  # the largest difference over runs and columns (fraction)


def _swap(column: str, old: str, new: str) -> str:
    return "_".join(new if part == old else part for part in column.split("_"))


def identical_metrics(rows: list[dict[str, Any]], tolerance: float = IDENTICAL_TOLERANCE) -> list[Fold]:
    """Fill variants whose every column equals the first fill's within ``tolerance`` on every ``ok`` run."""
    good = ok(rows)
    columns = {k for r in good for k, v in r.items() if _is_number(v)}
    present_fills = [f for f in FILLS if any(f in c.split("_") for c in columns)]
    folds: list[Fold] = []
    for base, variant in itertools.combinations(present_fills, 2):
        mine = sorted(c for c in columns if variant in c.split("_"))
        if not mine or any(_swap(c, variant, base) not in columns for c in mine):
            continue
        diffs = [abs(float(r[c]) - float(r[_swap(c, variant, base)])) for r in good for c in mine
                 if r.get(c) is not None and r.get(_swap(c, variant, base)) is not None]  # fmt: skip
        if diffs and max(diffs) <= tolerance and variant not in {f.variant for f in folds}:
            folds.append(Fold(variant, base, tuple(mine), max(diffs)))
    return folds


def folded_columns(folds: list[Fold]) -> set[str]:
    return {c for f in folds for c in f.columns}


def chance_level(grid: dict[str, Any] | None) -> float | None:
    """1 / number of classes of the grid's data set (None when unknown)."""
    name = ((grid or {}).get("data") or {}).get("name")
    if not name:
        return None
    with contextlib.suppress(Exception):  # a data set this install does not know: no flag rather than no report
        from cnnbench.data import DATA

        classes = getattr(DATA.get(name), "classes", None)
        if isinstance(classes, list | tuple) and classes:
            return 1.0 / len(classes)
    return None


def near_chance(cells: list[dict[str, Any]], chance: float | None, margin: float = CHANCE_MARGIN) -> set[str]:
    """Cells whose mean test accuracy is within ``margin`` of chance: their consistency means little."""
    if chance is None:
        return set()
    return {c["cell"] for c in cells if not math.isnan(c.get("test_acc_mean", math.nan))
            and c["test_acc_mean"] < chance + margin}  # fmt: skip


def needs_accuracy(metric: str) -> bool:
    """Metrics that mean little for a model at chance (agreement of its predictions)."""
    return "consistency" in metric


# ---------------------------------------------------------------------------------- exploratory family
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
    return {int(r["seed"]): float(r[metric]) for r in ok(rows)
            if r.get(metric) is not None and cell_id(r) not in skip and all(str(r.get(k)) == v for k, v in where.items())}  # fmt: skip


def comparisons(
    rows: list[dict[str, Any]], axis: str, metric: str = "test_acc", coords: tuple[str, ...] = COORDS,
    skip: AbstractSet[str] = frozenset(),
) -> list[Row]:  # fmt: skip
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
    rows: list[dict[str, Any]], axes: list[str], metrics: list[str], coords: tuple[str, ...] = COORDS,
    skip: AbstractSet[str] = frozenset(), alpha: float = ALPHA,  # type: ignore[assignment]
) -> list[Row]:  # fmt: skip
    """Every exploratory comparison, with Holm and BH adjusted p-values and Holm-consistent intervals.

    ``skip`` (cells near chance) is left out of the comparisons of consistency metrics only.
    """
    out = [c for axis in axes for metric in metrics
           for c in comparisons(rows, axis, metric, coords, skip if needs_accuracy(metric) else set())]  # fmt: skip
    ps = [c.comp.p for c in out]
    for c, h, q, level in zip(out, holm(ps), benjamini_hochberg(ps), holm_levels(ps, alpha)):
        c.holm_p, c.bh_p, c.level, c.half = h, q, level, half_width(c.comp.diff, level)
    return out
