"""Ablation grids: a validated YAML spec, expanded into cells, split into shards.

The grids cnnbench ships (``cnnbench/grids/*.yaml``) are installed with the package and
named by their file stem: ``cnnbench bench smoke``; :func:`find_grid` resolves a name or
a path, :func:`shipped_grids` lists them.

Example:
    >>> spec = GridSpec.from_dict({"name": "demo", "data": {"name": "mnist"}, "models": ["lenet5"],
    ...                            "pool": ["max", "avg"], "padding": ["valid"], "seeds": [0, 1]})
    >>> [c.run_id for c in expand(spec)][:2]
    ['lenet5-max-valid-zeros-32-true-d1-s0', 'lenet5-max-valid-zeros-32-true-d1-s1']

The axes are the fields of :class:`~cnnbench.bench.axes.Cell` (:mod:`cnnbench.bench.axes`);
:mod:`cnnbench.bench.gridparse` checks a grid file's every key. The ``augment`` axis (``none`` / ``standard`` / ``strong``) is part of each cell. A run_id
carries it as ``-aug<preset>`` before the seed, except for ``standard`` (every data set's
default but ``synthetic``'s), so grids written before the axis keep their run_ids and
their finished results.
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import yaml

from cnnbench.bench.axes import AXES, AXIS_NAMES, DEFAULT_AUGMENT, GRID_KEYS, Cell, ModelEntry
from cnnbench.bench.gridparse import (
    DATA_LINKED,
    ROBUSTNESS_DEFAULTS,
    ROBUSTNESS_KEYS,
    TOP_KEYS,
    GridError,
    parse_grid,
)
from cnnbench.core.choices import did_you_mean

__all__ = [
    "AXIS_NAMES",
    "DATA_LINKED",
    "DEFAULT_AUGMENT",
    "EXCLUDE_KEYS",
    "ROBUSTNESS_DEFAULTS",
    "ROBUSTNESS_KEYS",
    "TOP_KEYS",
    "Cell",
    "GridError",
    "GridSpec",
    "ModelEntry",
    "expand",
    "find_grid",
    "grid_listing",
    "parse_shard",
    "shard",
    "shipped_grids",
    "sweep_config",
]

#: the coordinates an ``exclude:`` entry may name (``model`` is a model's label: its name when it has no args)
EXCLUDE_KEYS = AXIS_NAMES


def shipped_grids() -> dict[str, Path]:
    """The grids installed with cnnbench: file stem → path (a grid's ``<name>.questions.yaml`` is not a grid).

    Example:
        >>> {"smoke", "mnist"} <= set(shipped_grids())
        True
    """
    from importlib.resources import files

    folder = Path(str(files("cnnbench") / "grids"))
    grids = (p for p in folder.glob("*.yaml") if not p.name.endswith(".questions.yaml"))
    return {p.stem: p for p in sorted(grids, key=lambda p: p.stem)}


def find_grid(name_or_path: str | Path) -> Path:
    """A grid file: an existing path as given, else the shipped grid of that name.

    Raises:
        GridError: Neither a file nor a shipped grid, naming the shipped ones and the closest.

    Example:
        >>> find_grid("smoke").name
        'smoke.yaml'
    """
    path = Path(name_or_path)
    if path.is_file():
        return path
    shipped = shipped_grids()
    stem = path.name.removesuffix(".yaml").removesuffix(".yml")
    if stem in shipped and (path.parent == Path(".") or path.parent.as_posix().endswith("grids")):
        return shipped[stem]  # a name, or a path into the old benchmarks/grids/ of a clone
    hint = did_you_mean(stem, shipped, n=2, quote="", lead="; did you mean ")
    raise GridError(
        f"{name_or_path}: no such grid file, and not a shipped grid{hint} (shipped: {', '.join(shipped)}; "
        "cnnbench bench --list describes them)"
    )


def grid_listing() -> str:
    """``cnnbench bench --list``: each shipped grid's name, run count and description (YAML only, fast)."""
    rows = [("name", "runs", "description")]
    for stem, path in shipped_grids().items():
        raw = yaml.safe_load(path.read_text()) or {}
        runs = 1
        for key in GRID_KEYS:
            value = raw.get(key, [None])
            runs *= len(value) if isinstance(value, list) else 1
        if raw.get("exclude"):  # exclusions need the validated cells (model labels)
            runs = len(expand(GridSpec.load(path)))
        rows.append((stem, str(runs), str(raw.get("description", raw.get("name", "")))))
    widths = [max(len(r[i]) for r in rows) for i in range(2)]
    return "\n".join(f"{r[0].ljust(widths[0])}  {r[1].rjust(widths[1])}  {r[2]}" for r in rows)


@dataclass(init=False)
class GridSpec:
    """A validated grid: the data and trainer blocks, and the values of each axis of :attr:`cell`.

    The axes are not fields of their own: :attr:`values` maps each axis's ``grid_key``
    (``models``, ``pool``, ..., ``seeds``) to its values, read as attributes (``spec.pool``), so
    adding an axis to :class:`Cell` is the whole edit. Axes left out take their default values.
    """

    cell: ClassVar[type[Cell]] = Cell  # the cell type whose fields are the axes
    name: str
    data: dict[str, Any]
    values: dict[str, list[Any]]
    trainer: dict[str, Any]
    robustness: dict[str, Any]
    description: str
    #: per-cell cluster resources (``--launcher ray``): see :mod:`cnnbench.bench.resources`
    resources: dict[str, float]
    source: str
    exclude: list[dict[str, Any]]

    def __init__(
        self,
        name: str,
        data: dict[str, Any],
        trainer: dict[str, Any] | None = None,
        robustness: dict[str, Any] | None = None,
        description: str = "",
        resources: dict[str, float] | None = None,
        source: str = "<dict>",
        exclude: list[dict[str, Any]] | None = None,
        **axes: list[Any],
    ) -> None:
        self.name, self.data, self.description, self.source = name, data, description, source
        self.trainer = dict(trainer or {})
        self.robustness = dict(ROBUSTNESS_DEFAULTS) if robustness is None else robustness
        self.resources = dict(resources or {})
        self.exclude = list(exclude or [])
        keys = [a.grid_key for a in self.cell.axes()]
        unknown = sorted(set(axes) - set(keys))
        if unknown:
            raise TypeError(f"{type(self).__name__} got values for unknown axes {unknown}; axes: {', '.join(keys)}")
        self.values = {}
        for a in self.cell.axes():
            if a.grid_key not in axes and a.default is None:
                raise TypeError(f"{type(self).__name__} needs the values of axis {a.grid_key!r}")
            self.values[a.grid_key] = list(axes.get(a.grid_key, a.default or ()))

    def __getattr__(self, key: str) -> Any:
        values = self.__dict__.get("values")
        if values is not None and key in values:
            return values[key]  # spec.pool, spec.seeds, ...: an axis's values
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {key!r}")

    @classmethod
    def load(cls, path: str | Path) -> GridSpec:
        """Read and validate a grid YAML file."""
        path = Path(path)
        try:
            raw = yaml.safe_load(path.read_text())
        except FileNotFoundError:
            raise GridError(f"{path}: no such grid file") from None
        except yaml.YAMLError as err:
            raise GridError(f"{path}: not valid YAML: {err}") from None
        return cls.from_dict(raw, source=str(path))

    @classmethod
    def from_dict(cls, raw: Any, source: str = "<dict>") -> GridSpec:
        """Validate a parsed grid (:func:`~cnnbench.bench.gridparse.parse_grid`); every error names the file and the key."""
        return cls(**parse_grid(raw, source, cls.cell))

    @classmethod
    def keys(cls) -> tuple[str, ...]:
        """The keyword arguments the constructor takes (a saved ``grid.json`` may hold others)."""
        fixed = [f.name for f in dataclasses.fields(cls) if f.name != "values"]
        return (*fixed, *(a.grid_key for a in cls.cell.axes()))

    def to_dict(self) -> dict[str, Any]:
        """What ``grid.json`` stores: the blocks and each axis's values under its grid key."""
        out: dict[str, Any] = {"name": self.name, "data": self.data}
        for key, values in self.values.items():
            out[key] = [{"name": m.name, "args": m.args} for m in values] if key == "models" else list(values)
        out.update(trainer=self.trainer, robustness=self.robustness, description=self.description)
        if self.resources:  # grids without the block keep their grid.json as before
            out["resources"] = self.resources
        out["exclude"] = self.exclude
        return out


def _excluded(cell: Cell, exclude: list[dict[str, Any]]) -> bool:
    columns = {a.name: a.column for a in AXES}  # ``model`` names a model's label
    return any(all(getattr(cell, columns.get(k, k)) == v for k, v in entry.items()) for entry in exclude)


def expand(spec: GridSpec) -> list[Cell]:
    """Every cell × seed of the grid, in a fixed order (the axes' order: models, pools, paddings, ...,
    augment, seeds), less the cells that an ``exclude:`` entry matches."""
    cells = []
    for values in itertools.product(*(getattr(spec, a.grid_key) for a in spec.cell.axes())):
        coords = {a.name: v for a, v in zip(spec.cell.axes(), values, strict=True)}
        model: ModelEntry = coords.pop("model")
        cells.append(spec.cell(model=model.name, model_args=model.args, model_label=model.label, **coords))
    return [c for c in cells if not _excluded(c, spec.exclude)]


def sweep_config(spec: GridSpec, grid_path: str, out: str) -> dict[str, Any]:
    """The W&B sweep (method ``grid``) whose agents each run one cell through ``cnnbench bench``.

    Example:
        >>> spec = GridSpec.from_dict({"name": "g", "data": "mnist", "models": ["lenet5"], "pool": "max",
        ...                            "padding": "valid"})
        >>> list(sweep_config(spec, "g.yaml", "out")["parameters"])
        ['model', 'pool', 'padding', 'padding_mode', 'precision', 'devices', 'seed', 'augment']
    """
    by_name = {a.name: a for a in spec.cell.axes()}
    params: dict[str, Any] = {}
    for a in (by_name[f.name] for f in dataclasses.fields(spec.cell) if f.name in by_name):  # seed before augment
        values = getattr(spec, a.grid_key)
        if a.name == "model":
            values = [m.label for m in values]
        elif a.or_int:
            values = [str(v) for v in values]  # W&B passes them back as strings
        params[a.name] = {"values": values}
    return {
        "name": spec.name,
        "method": "grid",
        "program": "cnnbench",
        "parameters": params,
        "command": ["${env}", "cnnbench", "bench", grid_path, "--out", out, "${args}"],
    }


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/n"`` → (i, n), 0 ≤ i < n."""
    try:
        i, n = (int(p) for p in text.split("/"))
    except ValueError:
        raise GridError(f"--shard {text!r}: expected i/n, e.g. 0/4") from None
    if n < 1 or not 0 <= i < n:
        raise GridError(f"--shard {text!r}: need 0 <= i < n")
    return i, n


def shard(cells: list[Cell], index: int, count: int) -> list[Cell]:
    """The ``index``-th of ``count`` disjoint slices; together they are exactly ``cells``."""
    return cells[index::count]
