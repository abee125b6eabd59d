"""The metrics a report knows: what each means (with its paper's definition), which extra columns
go into tables of their own, which fill variants duplicate each other, and which cells sit near chance.

Example:
    >>> is_fraction("consistency_zero"), metric_group("consistency_zero_below_stride")
    (True, 'stride')
"""

from __future__ import annotations

import contextlib
import itertools
import math
import re
from dataclasses import dataclass
from typing import Any

from cnnbench.bench.axes import COORDS
from cnnbench.bench.rows import BASE_FIELDS, is_number, ok

#: columns that are neither coordinates nor metrics to compare
NOT_METRICS = {
    *BASE_FIELDS,
    *COORDS,
    "augment_recorded",
    "error",
    "cell",
    "test_loss",
    "best_val_acc",
    "images_per_s",
    "peak_memory_mb",
    "edge_lost_ink",
    "edge_shift_px",
    "threads",
    "data_shared",
    "launcher",
    "total_stride",
    "translation_shift_px",
}
FILLS = ("zero", "circular", "reflect", "replicate", "background")  # variants of one metric that may coincide
IDENTICAL_TOLERANCE = 0.01  # a fill variant within 1 point of another on every run is the same metric
CHANCE_MARGIN = 0.10  # cells whose accuracy is within 10 points of chance are flagged
PER_K = re.compile(r"_k\d+$")


@dataclass(frozen=True)
class Metric:
    key: str
    label: str
    meaning: str
    legacy: bool = False


METRICS = (
    Metric("test_acc", "test acc", "top-1 accuracy on the clean test set"),
    Metric(
        "consistency_zero",
        "consistency (zero)",
        "shift consistency as Zhang 2019 defines it: the probability that two copies of a test image, each shifted "
        "by an independent random offset (uniform in [-k, k] on both axes, both signs), get the same top-1 class; "
        "uncovered pixels are 0; mean over the k measured",
    ),
    Metric(
        "consistency_circular",
        "consistency (circular)",
        "the same with circular shifts (content wraps around), Zhang's variant for CIFAR",
    ),
    Metric(
        "edge_acc",
        "edge acc",
        "accuracy with each image moved until the bounding box of its nonzero pixels touches an edge or corner "
        "(8 directions, mean); no ink leaves the frame (lost-ink fraction below)",
    ),
    Metric(
        "translation_acc",
        "translation acc",
        "large-translation probe (formerly the edge probe): accuracy with each image moved until the bounding box "
        "of its ink touches an edge or corner (8 directions, mean; no ink lost); a large translation, not a test of "
        "border information",
    ),
    Metric(
        "border_penalty",
        "border penalty",
        "on border-placed digits (half flush with an edge or corner, half centred, in training and test): accuracy "
        "on centred digits − accuracy on border digits; lower = less lost at the border",
    ),
    Metric(
        "diag_consistency",
        "legacy diag consistency",
        "LEGACY, not Zhang's definition: share of images whose class is unchanged between the original and one "
        "(+s, +s) down-right zero-fill shift, mean over s",
        legacy=True,
    ),
    Metric(
        "crop_border_acc",
        "legacy crop border acc",
        "LEGACY: accuracy with the content pushed a quarter of the side toward each edge/corner; this crops "
        "digits (ink is lost; the fraction was not recorded), so it does not isolate edge information",
        legacy=True,
    ),
)
NEW_METRICS = {
    "consistency_zero": "Zhang 2019 shift consistency (zero-fill)",
    "consistency_circular": "Zhang 2019 shift consistency (circular)",
    "shift_acc_zero_k": "accuracy under random shift, per k",
    "edge_acc": "edge probe without cropping (and its lost-ink fraction)",
}
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
    (
        "stride",
        "Shift consistency below and from the network's total stride",
        "mean consistency over the offsets k below the network's total stride (where pooling can matter) and over those "
        "at or above it (where the fully connected head decides)",
    ),
    (
        "border",
        "Border placement: accuracy by stratum and with the outer frame blanked",
        "acc_centred / acc_border: accuracy on centred / edge-placed digits; acc_border_blank{b}: border digits with the "
        "outer b px set to background at test time, blank{b}_drop = acc_border − that; acc_<direction>: per edge or corner",
    ),
)
STRATA = ("left", "right", "top", "bottom", "top_left", "top_right", "bottom_left", "bottom_right")


def metric_group(column: str) -> str | None:
    """The table an extra column belongs to (None: the cells table)."""
    if column.endswith(("_below_stride", "_from_stride")):
        return "stride"
    if column.startswith(("acc_centred", "acc_border", "blank")) or column in {f"acc_{s}" for s in STRATA}:
        return "border"
    return None


def is_fraction(metric: str) -> bool:
    """Metrics in [0, 1] (accuracies, consistencies, their differences), shown as percentage points."""
    return any(word in metric for word in ("acc", "consistency", "penalty", "lost_ink", "_drop"))


def needs_accuracy(metric: str) -> bool:
    """Metrics that mean little for a model at chance (agreement of its predictions)."""
    return "consistency" in metric


def per_k_columns(rows: list[dict[str, Any]]) -> list[str]:
    """The per-offset columns (``consistency_zero_k2``, legacy ``diag_*``)."""
    return sorted(
        {k for r in rows for k in r if k.startswith(("consistency_", "shift_acc_", "diag_")) and k[-1].isdigit()}
    )


def extra_metrics(rows: list[dict[str, Any]], coords: tuple[str, ...] = COORDS) -> list[str]:
    """Numeric columns the report does not know by name (e.g. consistency below the stride)."""
    known = {m.key for m in METRICS} | set(OTHER_SUMMARY) | set(per_k_columns(rows)) | NOT_METRICS | set(coords)
    keys = dict.fromkeys(k for r in ok(rows) for k, v in r.items() if is_number(v) and k not in known)
    return [k for k in keys if not k.startswith(("diag_", "t_")) and not k.endswith("_s")]


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
    columns = {k for r in good for k, v in r.items() if is_number(v)}
    present_fills = [f for f in FILLS if any(f in c.split("_") for c in columns)]
    folds: list[Fold] = []
    for base, variant in itertools.combinations(present_fills, 2):
        mine = sorted(c for c in columns if variant in c.split("_"))
        if not mine or any(_swap(c, variant, base) not in columns for c in mine):
            continue
        diffs = [
            abs(float(r[c]) - float(r[_swap(c, variant, base)]))
            for r in good
            for c in mine
            if r.get(c) is not None and r.get(_swap(c, variant, base)) is not None
        ]
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
    return {
        c["cell"]
        for c in cells
        if not math.isnan(c.get("test_acc_mean", math.nan)) and c["test_acc_mean"] < chance + margin
    }
