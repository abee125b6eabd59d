"""The grid's axes, declared once: the fields of :class:`Cell` that carry ``axis(...)`` metadata.

Everything that names the axes derives from this declaration: a cell's ``run_id`` and
``group_key``, the grid file's allowed keys and their validation, :func:`~cnnbench.bench.grid.expand`,
the ``exclude:`` keys, ``--<axis>`` filters, the W&B sweep parameters, the report's coordinate
columns and the reference level each exploratory comparison is read against. Adding an axis is
one new field here (with its ``axis(...)``) plus the list of its values in
:class:`~cnnbench.bench.grid.GridSpec` (a test checks the two agree).

The seed is the repeat axis: runs that differ only in their seed are repeats of one cell, so it
comes last in a run_id and in the expansion order, and is not a report coordinate.

Example:
    >>> cell = Cell("lenet5", {}, "lenet5", "max", "valid", "zeros", "32-true", 1, 0, "none")
    >>> cell.run_id
    'lenet5-max-valid-zeros-32-true-d1-augnone-s0'
    >>> AXIS_NAMES
    ('model', 'pool', 'padding', 'padding_mode', 'precision', 'devices', 'augment', 'seed')
    >>> REFERENCE
    {'pool': 'max', 'padding': 'valid', 'precision': '32-true', 'augment': 'none'}
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from cnnbench.core.vocab import PADDING_MODES, PADDINGS, POOL_KINDS, PRECISIONS

DEFAULT_AUGMENT = "standard"
"""Every data set's default preset but ``synthetic``'s: left out of run_ids, so grids written
before the augment axis keep their run_ids and their finished results."""


@dataclass(frozen=True)
class Axis:
    """How one field of :class:`Cell` appears in grid files, run ids and reports."""

    name: str = ""  # the Cell field (and the ``exclude:`` / ``--<axis>`` key); set from the field
    grid_key: str = ""  # the grid file's key listing the values (default: ``name``)
    column: str = ""  # the report's coordinate column (default: ``name``)
    default: tuple[Any, ...] | None = None  # the values when the grid omits the key; None: required
    valid: tuple[Any, ...] | None = None  # the allowed values (None: any of ``kind``)
    kind: type | None = None  # ``int``: integers >= ``minimum``
    minimum: int = 0
    to_model: bool = False  # passed to the model's constructor (never set per model in ``models[].args``)
    or_int: bool = False  # besides ``valid``: any integer >= ``minimum`` (an explicit padding)
    label: Callable[[Cell], str] | None = None  # the run_id part ("" leaves it out); default: the value
    reference: str | None = None  # the level other values are compared against in the report (None: not compared)

    def part(self, cell: Cell) -> str:
        """This axis's part of ``cell``'s run_id."""
        return self.label(cell) if self.label else str(getattr(cell, self.name))


def axis(**options: Any) -> dict[str, Axis]:
    """The ``metadata`` of a :class:`Cell` field that is a grid axis (``field(metadata=axis(...))``)."""
    return {"axis": Axis(**options)}


def _augment_label(cell: Cell) -> str:
    return "" if cell.augment == DEFAULT_AUGMENT else f"aug{cell.augment}"


@dataclass(frozen=True)
class Cell:
    """One run of a grid: every coordinate fixed, including the seed.

    The field order is the order of a result file's coordinates (``seed`` before ``augment``,
    which came later): keep it, so result files stay byte-identical.
    """

    model: str = field(metadata=axis(grid_key="models", column="model_label", label=lambda c: c.model_label))
    model_args: dict[str, Any]
    model_label: str
    pool: str = field(metadata=axis(valid=POOL_KINDS, to_model=True, reference=POOL_KINDS[0]))
    padding: str | int = field(
        metadata=axis(valid=(*PADDINGS, "default"), or_int=True, to_model=True, reference=PADDINGS[0])
    )
    padding_mode: str = field(metadata=axis(default=(PADDING_MODES[0],), valid=PADDING_MODES, to_model=True))
    precision: str = field(metadata=axis(default=(PRECISIONS[0],), valid=PRECISIONS, reference=PRECISIONS[0]))
    devices: int = field(metadata=axis(default=(1,), kind=int, minimum=1, label=lambda c: f"d{c.devices}"))
    seed: int = field(metadata=axis(grid_key="seeds", default=(0,), kind=int, label=lambda c: f"s{c.seed}"))
    # the valid presets and the default are the data module's (checked when the grid is read)
    augment: str = field(
        default=DEFAULT_AUGMENT, metadata=axis(default=(DEFAULT_AUGMENT,), label=_augment_label, reference="none")
    )

    @classmethod
    def axes(cls) -> tuple[Axis, ...]:
        """Every axis of this cell type, the seed last (the order of run ids and of the expansion)."""
        found = [_named(f) for f in dataclasses.fields(cls) if "axis" in f.metadata]
        return (*[a for a in found if a.name != "seed"], *[a for a in found if a.name == "seed"])

    @classmethod
    def coordinates(cls) -> tuple[Axis, ...]:
        """The axes without the seed: a cell's coordinates."""
        return tuple(a for a in cls.axes() if a.name != "seed")

    @property
    def run_id(self) -> str:
        return "-".join(p for p in (a.part(self) for a in self.axes()) if p)

    @property
    def group_key(self) -> tuple[Any, ...]:
        """Coordinates without the seed: runs with the same key are repeats."""
        return tuple(getattr(self, a.column) for a in self.coordinates())

    def matches(self, selection: dict[str, Any]) -> bool:
        """Whether every ``axis: value`` of ``selection`` holds (``model`` is the model's label)."""
        columns = {a.name: a.column for a in self.axes()}
        return all(str(self.to_dict().get(columns.get(k, k))) == str(v) for k, v in selection.items())

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _named(f: dataclasses.Field[Any]) -> Axis:
    spec: Axis = f.metadata["axis"]
    return dataclasses.replace(spec, name=f.name, grid_key=spec.grid_key or f.name, column=spec.column or f.name)


@dataclass(frozen=True)
class ModelEntry:
    """One entry of a grid's ``models:``: a registered name and its extra arguments."""

    name: str
    args: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """The name, with a short digest of the arguments when there are any (``lenet5~1a2b3c``)."""
        if not self.args:
            return self.name
        digest = hashlib.sha1(json.dumps(self.args, sort_keys=True).encode(), usedforsecurity=False).hexdigest()[:6]
        return f"{self.name}~{digest}"


AXES = Cell.axes()
"""Every axis, seed last."""
COORDINATES = Cell.coordinates()
"""The axes without the seed."""
COORDS = tuple(a.column for a in COORDINATES)
"""The report's coordinate columns."""
AXIS_NAMES = tuple(a.name for a in AXES)
"""The ``exclude:`` keys and the ``--<axis>`` filters of ``cnnbench bench``."""
GRID_KEYS = tuple(a.grid_key for a in AXES)
"""The grid file's keys that list an axis's values, in expansion order."""
REFERENCE = {a.column: a.reference for a in COORDINATES if a.reference is not None}
"""Axis → the level the report's exploratory comparisons are read against (``other − reference``)."""
COMPARED = tuple(REFERENCE)
"""The axes whose values the exploratory tables compare."""
