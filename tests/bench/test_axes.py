"""The grid's axes are declared once (the fields of ``Cell``): every place that names them derives from it,
and a new axis, declared in a ``Cell`` subclass, reaches the grid file, run ids, expansion and the report."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pytest

from cnnbench.bench import analysis
from cnnbench.bench.axes import AXIS_NAMES, COORDS, REFERENCE, Cell, axis
from cnnbench.bench.family import family
from cnnbench.bench.grid import EXCLUDE_KEYS, GridError, GridSpec, expand, sweep_config
from cnnbench.bench.gridparse import TOP_KEYS
from cnnbench.bench.rows import coordinates
from cnnbench.core.vocab import PADDINGS, POOL_KINDS, PRECISIONS

TODAY = ("model", "pool", "padding", "padding_mode", "precision", "devices", "augment", "seed")
BASE = {"name": "g", "data": "mnist", "models": ["lenet5"], "pool": ["max"], "padding": ["valid"]}


def test_every_place_lists_exactly_the_declared_axes() -> None:
    declared = [f.name for f in dataclasses.fields(Cell) if "axis" in f.metadata]
    assert sorted(declared) == sorted(TODAY) and AXIS_NAMES == TODAY  # the seed is last
    grid_keys = ("models", "pool", "padding", "padding_mode", "precision", "devices", "augment", "seeds")
    assert ("name", "description", "data", *grid_keys, "trainer", "robustness", "exclude", "resources") == TOP_KEYS
    assert set(grid_keys) <= set(GridSpec.keys())  # each axis's values are taken and stored
    assert EXCLUDE_KEYS == TODAY
    assert COORDS == analysis.COORDS == ("model_label", *TODAY[1:-1])
    spec = GridSpec.from_dict(BASE)
    assert list(sweep_config(spec, "g.yaml", "out")["parameters"]) == [*TODAY[:-2], "seed", "augment"]
    # the report's reference levels come from the vocabularies: the first of each
    assert {"pool": POOL_KINDS[0], "padding": PADDINGS[0], "precision": PRECISIONS[0], "augment": "none"} == REFERENCE
    assert POOL_KINDS[0] == "max" and PADDINGS[0] == "valid" and PRECISIONS[0] == "32-true"


def test_run_ids_stay_those_of_results_on_disk() -> None:
    # resume finds finished results by run_id: these are the ids grids have written so far
    spec = GridSpec.from_dict({**BASE, "augment": ["standard", "none"], "seeds": [3], "padding": [2]})
    assert [c.run_id for c in expand(spec)] == [
        "lenet5-max-2-zeros-32-true-d1-s3",
        "lenet5-max-2-zeros-32-true-d1-augnone-s3",
    ]
    cell = expand(spec)[1]
    assert list(cell.to_dict()) == [
        "model",
        "model_args",
        "model_label",
        "pool",
        "padding",
        "padding_mode",
        "precision",
        "devices",
        "seed",
        "augment",
    ]
    assert cell.group_key == ("lenet5", "max", 2, "zeros", "32-true", 1, "none")


@dataclass(frozen=True)
class WidthCell(Cell):
    """A cell with one more axis: the network's width multiplier."""

    width: int = field(
        default=1, metadata=axis(grid_key="widths", default=(1,), kind=int, minimum=1, label=lambda c: f"w{c.width}")
    )


class WidthSpec(GridSpec):
    cell: ClassVar[type[Cell]] = WidthCell  # stands for editing Cell itself: GridSpec follows its axes


def test_a_new_axis_is_one_declaration() -> None:
    spec = WidthSpec.from_dict({**BASE, "widths": [1, 2], "seeds": [0, 1]})
    cells = expand(spec)
    assert [c.run_id for c in cells] == [
        "lenet5-max-valid-zeros-32-true-d1-w1-s0",
        "lenet5-max-valid-zeros-32-true-d1-w1-s1",
        "lenet5-max-valid-zeros-32-true-d1-w2-s0",
        "lenet5-max-valid-zeros-32-true-d1-w2-s1",
    ]
    assert cells[0].group_key == cells[1].group_key != cells[2].group_key
    assert [c.run_id for c in cells if c.matches({"width": 2, "seed": 0})] == [
        "lenet5-max-valid-zeros-32-true-d1-w2-s0"
    ]
    assert sweep_config(spec, "g.yaml", "out")["parameters"]["width"] == {"values": [1, 2]}
    with pytest.raises(GridError, match=r"widths: 0 is not a valid width \(an integer >= 1\)"):
        WidthSpec.from_dict({**BASE, "widths": [0]})
    with pytest.raises(GridError, match="exclude.depth: not a coordinate; valid: .*augment, width, seed"):
        WidthSpec.from_dict({**BASE, "exclude": [{"depth": 1}]})
    assert len(expand(WidthSpec.from_dict({**BASE, "widths": [1, 2], "exclude": [{"width": 2}]}))) == 1

    # the report: the axis is a coordinate, cells are summarized per width, widths are compared paired by seed
    rows: list[dict[str, Any]] = [
        {**c.to_dict(), "run_id": c.run_id, "status": "ok", "test_acc": 0.9 + 0.05 * (c.width == 2) + 0.01 * c.seed}
        for c in cells
    ]
    coords = coordinates(rows, spec.to_dict(), WidthCell)
    assert coords == (*COORDS, "width")
    summary = analysis.summarize_cells(rows, coords)
    assert [(s["width"], s["n_ok"], round(s["test_acc_mean"], 3)) for s in summary] == [(1, 2, 0.905), (2, 2, 0.955)]
    (comparison,) = family(rows, ["width"], ["test_acc"], coords)
    assert (comparison.comp.a, comparison.comp.b, round(comparison.comp.diff.mean, 3)) == ("2", "1", 0.05)
