"""Ablation grids: a validated YAML spec, expanded into cells, split into shards.

The grids cnnbench ships (``cnnbench/grids/*.yaml``) are installed with the package and
named by their file stem: ``cnnbench bench smoke``; :func:`find_grid` resolves a name or
a path, :func:`shipped_grids` lists them.

Example:
    >>> spec = GridSpec.from_dict({"name": "demo", "data": {"name": "mnist"}, "models": ["lenet5"],
    ...                            "pool": ["max", "avg"], "padding": ["valid"], "seeds": [0, 1]})
    >>> [c.run_id for c in expand(spec)][:2]
    ['lenet5-max-valid-zeros-32-true-d1-s0', 'lenet5-max-valid-zeros-32-true-d1-s1']

Every key of the ``data:``, ``models[].args`` and ``trainer:`` blocks is checked against
the real signatures when the grid is loaded (``--dry-run`` included), so a typo fails in
a second, naming the file, the key and the closest valid names, not after the first cell.

The ``augment`` axis (``none`` / ``standard`` / ``strong``) is part of each cell. A run_id
carries it as ``-aug<preset>`` before the seed, except for ``standard`` (every data set's
default but ``synthetic``'s), so grids written before the axis keep their run_ids and
their finished results.
"""

from __future__ import annotations

import difflib
import hashlib
import inspect
import itertools
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from cnnbench.core.vocab import PRECISIONS

TOP_KEYS = (
    "name",
    "description",
    "data",
    "models",
    "pool",
    "padding",
    "padding_mode",
    "precision",
    "devices",
    "augment",
    "seeds",
    "trainer",
    "robustness",
    "exclude",
    "resources",
)
#: the coordinates an ``exclude:`` entry may name (``model`` is a model's label: its name when it has no args)
EXCLUDE_KEYS = ("model", "pool", "padding", "padding_mode", "precision", "devices", "augment", "seed")
ROBUSTNESS_KEYS = ("shifts", "fills", "fill", "copies", "seed", "edge", "max_images", "batch_size")
ROBUSTNESS_DEFAULTS: dict[str, Any] = {"shifts": [1, 2, 3, 4], "fills": ["zero", "circular"], "copies": 4, "seed": 0}
DEFAULT_AUGMENT = "standard"
#: data-module arguments a grid sets through its own axes, never in ``data:``
DATA_LINKED = {"seed": "the seeds axis", "augment": "the top-level augment axis"}


class GridError(ValueError):
    """A grid file that cannot be run, with the file and key named."""


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
    close = difflib.get_close_matches(stem, sorted(shipped), n=2, cutoff=0.6)
    hint = f"; did you mean {' or '.join(close)}?" if close else ""
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
        for key in ("models", "pool", "padding", "padding_mode", "precision", "devices", "augment", "seeds"):
            value = raw.get(key, [None])
            runs *= len(value) if isinstance(value, list) else 1
        if raw.get("exclude"):  # exclusions need the validated cells (model labels)
            runs = len(expand(GridSpec.load(path)))
        rows.append((stem, str(runs), str(raw.get("description", raw.get("name", "")))))
    widths = [max(len(r[i]) for r in rows) for i in range(2)]
    return "\n".join(f"{r[0].ljust(widths[0])}  {r[1].rjust(widths[1])}  {r[2]}" for r in rows)


def accepted_arguments(target: Any) -> set[str] | None:
    """Keyword arguments a class (its ``__init__`` chain) or function accepts; None = any.

    Follows ``**kwargs`` up the class hierarchy, stopping at Lightning's and torch's own
    base classes, which take nothing a cnnbench subclass does not already name.

    Example:
        >>> from cnnbench.data import DATA
        >>> {"batch_size", "image_size", "augment"} <= accepted_arguments(DATA.get("mnist"))
        True
    """
    names: set[str] = set()
    chain = target.__mro__ if isinstance(target, type) else (target,)
    for klass in chain:
        fn = klass.__dict__.get("__init__") if isinstance(target, type) else klass
        if fn is None:
            continue
        if isinstance(target, type) and klass.__module__.split(".")[0] in (
            "lightning",
            "pytorch_lightning",
            "torch",
            "builtins",
        ):
            return names
        params = list(inspect.signature(fn).parameters.values())
        names |= {p.name for p in params if p.name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            return names
        if not isinstance(target, type):
            return None  # a builder function taking **kwargs: cannot know
    return names


def _unknown_argument(key: str, valid: set[str], what: str) -> str:
    close = difflib.get_close_matches(key, sorted(valid), n=3, cutoff=0.6)
    hint = f"; did you mean {' or '.join(close)}?" if close else ""
    return f"not an argument of {what}{hint} (valid: {', '.join(sorted(valid))})"


@dataclass(frozen=True)
class ModelEntry:
    name: str
    args: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        if not self.args:
            return self.name
        digest = hashlib.sha1(json.dumps(self.args, sort_keys=True).encode(), usedforsecurity=False).hexdigest()[:6]
        return f"{self.name}~{digest}"


@dataclass(frozen=True)
class Cell:
    """One run of a grid: every coordinate fixed, including the seed."""

    model: str
    model_args: dict[str, Any]
    model_label: str
    pool: str
    padding: str | int
    padding_mode: str
    precision: str
    devices: int
    seed: int
    augment: str = DEFAULT_AUGMENT

    @property
    def run_id(self) -> str:
        aug = "" if self.augment == DEFAULT_AUGMENT else f"-aug{self.augment}"
        return f"{self.model_label}-{self.pool}-{self.padding}-{self.padding_mode}-{self.precision}-d{self.devices}{aug}-s{self.seed}"

    @property
    def group_key(self) -> tuple[Any, ...]:
        """Coordinates without the seed: runs with the same key are repeats."""
        return (
            self.model_label,
            self.pool,
            self.padding,
            self.padding_mode,
            self.precision,
            self.devices,
            self.augment,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class GridSpec:
    name: str
    data: dict[str, Any]
    models: list[ModelEntry]
    pool: list[str]
    padding: list[str | int]
    padding_mode: list[str] = field(default_factory=lambda: ["zeros"])
    precision: list[str] = field(default_factory=lambda: ["32-true"])
    devices: list[int] = field(default_factory=lambda: [1])
    seeds: list[int] = field(default_factory=lambda: [0])
    trainer: dict[str, Any] = field(default_factory=dict)
    robustness: dict[str, Any] = field(default_factory=lambda: dict(ROBUSTNESS_DEFAULTS))
    augment: list[str] = field(default_factory=lambda: [DEFAULT_AUGMENT])
    description: str = ""
    #: per-cell cluster resources (``--launcher ray``): see :mod:`cnnbench.bench.resources`
    resources: dict[str, float] = field(default_factory=dict)
    source: str = "<dict>"
    exclude: list[dict[str, Any]] = field(default_factory=list)

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
        """Validate a parsed grid; every error names the file and the key."""
        from cnnbench.data import DATA
        from cnnbench.models import MODELS
        from cnnbench.models.layers import PADDING_MODES, PADDINGS, POOL_KINDS

        def fail(key: str, message: str) -> GridError:
            return GridError(f"{source}: {key}: {message}")

        if not isinstance(raw, dict):
            raise GridError(f"{source}: a grid is a mapping of keys ({', '.join(TOP_KEYS)})")
        unknown = sorted(set(raw) - set(TOP_KEYS))
        if unknown:
            raise fail(unknown[0], f"unknown key; valid keys: {', '.join(TOP_KEYS)}")
        for key in ("name", "data", "models", "pool", "padding"):
            if key not in raw:
                raise fail(key, "missing (required)")

        def axis(
            key: str, default: list[Any], valid: tuple[Any, ...] | None = None, kind: type | None = None
        ) -> list[Any]:
            values = raw.get(key, default)
            values = values if isinstance(values, list) else [values]
            if not values:
                raise fail(key, "empty axis: give at least one value")
            for v in values:
                if kind is int and (
                    not isinstance(v, int) or isinstance(v, bool) or v < (1 if key == "devices" else 0)
                ):
                    raise fail(
                        key,
                        f"{v!r} is not a valid {key[:-1] if key.endswith('s') else key} (an integer{' >= 1' if key == 'devices' else ' >= 0'})",
                    )
                if valid is not None and v not in valid and not (key == "padding" and isinstance(v, int) and v >= 0):
                    raise fail(key, f"unknown value {v!r}; valid: {', '.join(map(str, valid))}")
            if len(set(map(str, values))) != len(values):
                raise fail(key, "duplicate values")
            return values

        data = raw["data"]
        if isinstance(data, str):
            data = {"name": data}
        if not isinstance(data, dict) or "name" not in data:
            raise fail("data", "give {name: <data module>, ...arguments}")
        if data["name"] not in DATA:
            raise fail("data.name", DATA.unknown_message(str(data["name"])))
        data_cls = DATA.get(data["name"])
        data_args = accepted_arguments(data_cls)
        for key in data:
            if key in DATA_LINKED:
                if key != "augment" or "augment" in raw:
                    raise fail(f"data.{key}", f"set by {DATA_LINKED[key]}, not in data:")
            elif key != "name" and data_args is not None and key not in data_args:
                raise fail(
                    f"data.{key}", _unknown_argument(key, data_args - set(DATA_LINKED), f"data module {data['name']!r}")
                )
        presets = tuple(getattr(data_cls, "augment_presets", {DEFAULT_AUGMENT: None}))
        default_augment = DEFAULT_AUGMENT if DEFAULT_AUGMENT in presets else presets[0]
        augment = axis("augment", [data.get("augment", default_augment)], presets)
        data = {k: v for k, v in data.items() if k != "augment"}  # the axis carries it, per cell
        models = []
        for entry in axis("models", []):
            item = (
                ModelEntry(entry)
                if isinstance(entry, str)
                else ModelEntry(entry.get("name", ""), dict(entry.get("args") or {}))
                if isinstance(entry, dict)
                else None
            )
            if item is None:
                raise fail("models", MODELS.unknown_message(str(entry)))
            try:
                model_cls = MODELS.get(item.name)  # unknown, or a plugin that failed to import: one line
            except ValueError as err:
                raise fail("models", str(err)) from None
            problem = getattr(model_cls, "plugin_problem", None)
            if problem:
                raise fail(f"models.{item.name}", str(problem))
            linked = sorted(
                set(item.args) & {"num_classes", "in_channels", "input_size", "pool", "padding", "padding_mode"}
            )
            if linked:
                raise fail(
                    f"models.{item.name}.args.{linked[0]}", "set by the data module or a grid axis, not per model"
                )
            model_args = accepted_arguments(model_cls)
            needed = ["pool", "padding"] + (
                ["padding_mode"] if raw.get("padding_mode", ["zeros"]) not in ("zeros", ["zeros"]) else []
            )
            lacking = [k for k in needed if model_args is not None and k not in model_args]
            if lacking:
                raise fail(
                    f"models.{item.name}",
                    f"model {item.name!r} has no argument {lacking[0]!r}, which the grid's {lacking[0]} axis sets "
                    "(a grid model takes pool and padding; see README, Plugins)",
                )
            for key in item.args:
                if model_args is not None and key not in model_args:
                    raise fail(
                        f"models.{item.name}.args.{key}", _unknown_argument(key, model_args, f"model {item.name!r}")
                    )
            models.append(item)
        trainer = raw.get("trainer") or {}
        import lightning as L

        trainer_params = set(inspect.signature(L.Trainer.__init__).parameters) - {"self"}
        for key in trainer:
            if key not in trainer_params:
                close = difflib.get_close_matches(key, sorted(trainer_params), n=3, cutoff=0.6)
                hint = f"; did you mean {' or '.join(close)}?" if close else ""
                raise fail(f"trainer.{key}", f"not a Trainer argument{hint}")
            if key in ("max_epochs", "max_steps") and (
                not isinstance(trainer[key], int) or trainer[key] == 0 or trainer[key] < -1
            ):
                raise fail(f"trainer.{key}", f"must be a positive integer (or -1), got {trainer[key]!r}")
            if key in ("precision", "devices"):
                raise fail(f"trainer.{key}", f"use the top-level '{key}' axis")
        robustness = dict(raw.get("robustness") or {})
        for key in robustness:
            if key == "border":
                raise fail(
                    "robustness.border",
                    "the cropping border probe was replaced by the edge probe (no ink lost); remove the key",
                )
            if key not in ROBUSTNESS_KEYS:
                raise fail(f"robustness.{key}", f"unknown key; valid: {', '.join(ROBUSTNESS_KEYS)}")
        if "fill" in robustness:  # the older single-variant spelling
            if "fills" in robustness:
                raise fail("robustness.fill", "give fills only")
            robustness["fills"] = [robustness.pop("fill")]
        robustness = {**ROBUSTNESS_DEFAULTS, **robustness}
        fills = robustness["fills"]
        if not isinstance(fills, list) or not fills or not set(fills) <= {"zero", "circular"}:
            raise fail("robustness.fills", "a list of zero and/or circular")
        shifts = robustness["shifts"]
        if not isinstance(shifts, list) or not all(isinstance(s, int) and s > 0 for s in shifts):
            raise fail("robustness.shifts", "a list of positive integers")
        for key, low in (("copies", 2), ("seed", 0), ("max_images", 1), ("batch_size", 1)):
            value = robustness.get(key, low)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < low):
                raise fail(f"robustness.{key}", f"an integer >= {low}, got {value!r}")
        if not isinstance(raw["name"], str) or not raw["name"] or "/" in raw["name"]:
            raise fail("name", "a non-empty name without '/'")
        exclude = _exclusions(raw.get("exclude") or [], fail)
        return cls(
            name=raw["name"], data=dict(data), models=models,
            pool=axis("pool", [], POOL_KINDS), padding=axis("padding", [], (*PADDINGS, "default")),
            padding_mode=axis("padding_mode", ["zeros"], PADDING_MODES), precision=axis("precision", ["32-true"], PRECISIONS),
            devices=axis("devices", [1], kind=int), seeds=axis("seeds", [0], kind=int), trainer=dict(trainer),
            robustness=robustness, augment=augment, description=str(raw.get("description", "")), source=source,
            exclude=exclude, resources=_resources(raw.get("resources"), source),
        )  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["models"] = [{"name": m.name, "args": m.args} for m in self.models]
        out.pop("source")
        if not out["resources"]:
            out.pop("resources")  # grids without the block keep their grid.json as before
        return out


def _resources(raw: Any, source: str) -> dict[str, float]:
    from cnnbench.bench.resources import parse_resources

    try:
        return parse_resources(raw, source)
    except ValueError as err:
        raise GridError(str(err)) from None


def _exclusions(entries: Any, fail: Any) -> list[dict[str, Any]]:
    """Check ``exclude:``: a list of partial coordinates; a cell matching every key of one entry is dropped."""
    if not isinstance(entries, list) or not all(isinstance(e, dict) and e for e in entries):
        raise fail("exclude", "a list of mappings of coordinates, e.g. [{padding: valid, padding_mode: background}]")
    for entry in entries:
        for key in entry:
            if key not in EXCLUDE_KEYS:
                raise fail(f"exclude.{key}", f"not a coordinate; valid: {', '.join(EXCLUDE_KEYS)}")
    return [dict(e) for e in entries]


def _excluded(cell: Cell, exclude: list[dict[str, Any]]) -> bool:
    def matches(key: str, value: Any) -> bool:
        if key == "model":
            return bool(value == cell.model_label)
        return bool(getattr(cell, key) == value)

    return any(all(matches(k, v) for k, v in entry.items()) for entry in exclude)


def expand(spec: GridSpec) -> list[Cell]:
    """Every cell × seed of the grid, in a fixed order (models, pools, paddings, ..., augment, seeds),
    less the cells that an ``exclude:`` entry matches."""
    cells = [
        Cell(m.name, m.args, m.label, pool, pad, mode, prec, dev, seed, aug)
        for m, pool, pad, mode, prec, dev, aug, seed in itertools.product(
            spec.models,
            spec.pool,
            spec.padding,
            spec.padding_mode,
            spec.precision,
            spec.devices,
            spec.augment,
            spec.seeds,
        )
    ]
    return [c for c in cells if not _excluded(c, spec.exclude)]


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
