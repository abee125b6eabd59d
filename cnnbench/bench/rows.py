"""A results folder read into rows: one flat dict per run, coordinates and metrics as columns.

Rows come from the runs' ``results/*.json`` (or, for a committed report, ``results.csv``, whose
older column names are renamed); ``grid.json`` says what was planned.

Example:
    >>> rows = [{"run_id": "a-s0", "status": "ok", "seed": 0, "test_acc": 0.5}]
    >>> cell_id(rows[0]), [r["seed"] for r in ok(rows)]
    ('a', [0])
"""

from __future__ import annotations

import contextlib
import csv
import json
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

from cnnbench.bench.axes import COORDS, DEFAULT_AUGMENT, Cell, ModelEntry
from cnnbench.bench.grid import GridSpec, expand
from cnnbench.bench.results import load_results

#: the first columns of results.csv, in their historical order; the augment axis (added later) and any
#: newer axis follow them (see :func:`flatten`), so a results.csv keeps its columns
BASE_FIELDS = (
    "run_id",
    "grid",
    *(c for c in COORDS if c != "augment"),
    "model",
    "seed",
    "status",
    "test_acc",
    "test_loss",
    "best_val_acc",
    "train_time_s",
    "images_per_s",
    "peak_memory_mb",
    "params",
    "macs",
    "epochs",
)
LEGACY_COLUMNS = {"shift_consistency": "diag_consistency", "border_acc": "crop_border_acc"}


def is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def flatten(result: dict[str, Any], default_augment: str = DEFAULT_AUGMENT) -> dict[str, Any]:
    """One CSV row: coordinates, metrics, and robustness metrics spread into columns.

    Top-level scalars a newer cell records (an extra axis) and the scalar columns of its ``metrics``
    block (border penalty, consistency below/from the stride, ...) become columns too, so the report
    handles metrics it does not know by name.
    """
    row: dict[str, Any] = {k: result.get(k) for k in BASE_FIELDS}
    row["augment"] = result.get("augment") or default_augment
    row["augment_recorded"] = "augment" in result
    for k, v in result.items():  # extra axes and metrics of newer cells
        if k not in row and (isinstance(v, str) or is_number(v)) and not k.startswith("t_") and not k.endswith("_s"):
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
        if is_number(v):
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


def read_results_csv(path: Path, default_augment: str = DEFAULT_AUGMENT) -> list[dict[str, Any]]:
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
    default_augment = str(((read_grid(out) or {}).get("data") or {}).get("augment", DEFAULT_AUGMENT))
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
    names = set(GridSpec.keys())
    try:
        kwargs = {k: v for k, v in grid.items() if k in names}
        kwargs["models"] = [ModelEntry(m["name"], dict(m.get("args") or {})) for m in grid["models"]]
        cells = expand(GridSpec(**kwargs))
    except (KeyError, TypeError, ValueError):
        return None
    return [{**c.to_dict(), "run_id": c.run_id} for c in cells]


def coordinates(rows: list[dict[str, Any]], grid: dict[str, Any] | None, cell: type[Cell] = Cell) -> tuple[str, ...]:
    """The report's coordinates: the axes of ``cell`` but the seed, plus any other list of the grid that the rows
    record (an axis of a newer cnnbench)."""
    axis_keys = {a.grid_key for a in cell.axes()}
    extra = [
        k for k, v in (grid or {}).items() if isinstance(v, list) and k not in axis_keys and any(k in r for r in rows)
    ]
    return (*(a.column for a in cell.coordinates()), *extra)


def ok(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The runs that finished (status ``ok``)."""
    return [r for r in rows if r["status"] == "ok"]


def present(rows: list[dict[str, Any]], key: str) -> bool:
    """Whether any ``ok`` run records ``key``."""
    return any(r.get(key) is not None for r in ok(rows))


def varying(rows: list[dict[str, Any]], coords: tuple[str, ...] = COORDS) -> list[str]:
    """The coordinates that take more than one value among the rows."""
    return [c for c in coords if len({str(r.get(c)) for r in rows}) > 1]


def not_run(rows: list[dict[str, Any]], planned: list[dict[str, Any]] | None) -> dict[str, list[int]]:
    """Planned cells with seeds that have no result at all: cell → missing seeds."""
    done = {str(r["run_id"]) for r in rows}
    missing: dict[str, list[int]] = defaultdict(list)
    for p in planned or []:
        if p["run_id"] not in done:
            missing[cell_id(p)].append(int(p["seed"]))
    return dict(missing)
