"""Reading a grid file: every key checked against the axes and the real signatures, one phase per block.

Every key of the ``data:``, ``models[].args`` and ``trainer:`` blocks is checked against the real
signatures when the grid is loaded (``--dry-run`` included), so a typo fails in a second, naming
the file, the key and the closest valid names, not after the first cell. :func:`parse_grid`
returns the arguments of :class:`~cnnbench.bench.grid.GridSpec`.

Example:
    >>> raw = {"name": "demo", "data": "mnist", "models": ["lenet5"], "pool": "max", "padding": ["valid"]}
    >>> parsed = parse_grid(raw, "demo.yaml")
    >>> parsed["pool"], parsed["seeds"], parsed["augment"]
    (['max'], [0], ['standard'])
    >>> parse_grid({**raw, "seeds": [-1]}, "demo.yaml")
    Traceback (most recent call last):
    ...
    cnnbench.bench.gridparse.GridError: demo.yaml: seeds: -1 is not a valid seed (an integer >= 0)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cnnbench.bench.axes import AXES, DEFAULT_AUGMENT, Axis, Cell, ModelEntry
from cnnbench.core.choices import did_you_mean
from cnnbench.core.signature import accepted_kwargs
from cnnbench.core.vocab import LINKED_ARGUMENTS, PADDING_MODES


def top_keys(cell: type[Cell] = Cell) -> tuple[str, ...]:
    """A grid file's keys: the blocks, and one per axis of ``cell`` (listing its values)."""
    return (
        "name",
        "description",
        "data",
        *(a.grid_key for a in cell.axes()),
        "trainer",
        "robustness",
        "exclude",
        "resources",
    )


TOP_KEYS = top_keys()
ROBUSTNESS_KEYS = ("shifts", "fills", "fill", "copies", "seed", "edge", "max_images", "batch_size")
ROBUSTNESS_DEFAULTS: dict[str, Any] = {"shifts": [1, 2, 3, 4], "fills": ["zero", "circular"], "copies": 4, "seed": 0}
#: data-module arguments a grid sets through its own axes, never in ``data:``
DATA_LINKED = {"seed": "the seeds axis", "augment": "the top-level augment axis"}
#: model arguments set by the data module or a grid axis, never per model
MODEL_LINKED = {*LINKED_ARGUMENTS, *(a.name for a in AXES if a.to_model)}

ZEROS = PADDING_MODES[0]  # torch's convolutions' own padding: a model without padding_mode pads so

Fail = Callable[[str, str], Exception]


class GridError(ValueError):
    """A grid file that cannot be run, with the file and key named."""


def unknown_argument(key: str, valid: set[str], what: str) -> str:
    """``not an argument of <what>; did you mean x?`` with every valid name."""
    return f"not an argument of {what}{_hint(key, valid)} (valid: {', '.join(sorted(valid))})"


def _hint(word: str, options: set[str] | list[str], n: int = 3) -> str:
    return did_you_mean(word, options, n=n, quote="", lead="; did you mean ")


def parse_grid(raw: Any, source: str = "<dict>", cell: type[Cell] = Cell) -> dict[str, Any]:
    """Validate a parsed grid file; the keyword arguments of ``GridSpec``. Every error names the file and key.

    Raises:
        GridError: The first problem found.
    """

    def fail(key: str, message: str) -> GridError:
        return GridError(f"{source}: {key}: {message}")

    check_keys(raw, source, fail, cell)
    data, presets = data_block(raw, fail)
    augment = axis_values(raw, _axis("augment"), fail, [data.pop("augment", _default_augment(presets))], presets)
    models = model_entries(raw, fail)
    trainer = trainer_block(raw.get("trainer") or {}, fail)
    robustness = robustness_block(dict(raw.get("robustness") or {}), fail)
    if not isinstance(raw["name"], str) or not raw["name"] or "/" in raw["name"]:
        raise fail("name", "a non-empty name without '/'")
    exclude = exclusions(raw.get("exclude") or [], fail, cell)
    axes = {a.grid_key: axis_values(raw, a, fail) for a in cell.axes() if a.name not in ("model", "augment")}
    return {
        "name": raw["name"],
        "data": data,
        "models": models,
        **axes,
        "augment": augment,
        "trainer": dict(trainer),
        "robustness": robustness,
        "description": str(raw.get("description", "")),
        "source": source,
        "exclude": exclude,
        "resources": _resources(raw.get("resources"), source),
    }


def check_keys(raw: Any, source: str, fail: Fail, cell: type[Cell] = Cell) -> None:
    """A mapping of known keys holding every required one (those of axes without a default)."""
    keys = top_keys(cell)
    if not isinstance(raw, dict):
        raise GridError(f"{source}: a grid is a mapping of keys ({', '.join(keys)})")
    unknown = sorted(set(raw) - set(keys))
    if unknown:
        raise fail(unknown[0], f"unknown key; valid keys: {', '.join(keys)}")
    for key in ("name", "data", *(a.grid_key for a in cell.axes() if a.default is None)):
        if key not in raw:
            raise fail(key, "missing (required)")


def _axis(name: str) -> Axis:
    return next(a for a in AXES if a.name == name)


def axis_values(
    raw: dict[str, Any], axis: Axis, fail: Fail, default: list[Any] | None = None, valid: tuple[Any, ...] | None = None
) -> list[Any]:
    """The values of one axis: a list (a single value is one), each allowed, none twice."""
    key = axis.grid_key
    values = raw.get(key, default if default is not None else list(axis.default or ()))
    values = values if isinstance(values, list) else [values]
    valid = valid if valid is not None else axis.valid
    if not values:
        raise fail(key, "empty axis: give at least one value")
    for v in values:
        is_int = isinstance(v, int) and not isinstance(v, bool) and v >= axis.minimum
        if axis.kind is int and not is_int:
            raise fail(key, f"{v!r} is not a valid {key.removesuffix('s')} (an integer >= {axis.minimum})")
        if valid is not None and v not in valid and not (axis.or_int and is_int):
            raise fail(key, f"unknown value {v!r}; valid: {', '.join(map(str, valid))}")
    if len(set(map(str, values))) != len(values):
        raise fail(key, "duplicate values")
    return values


def _default_augment(presets: tuple[str, ...]) -> str:
    return DEFAULT_AUGMENT if DEFAULT_AUGMENT in presets else presets[0]


def data_block(raw: dict[str, Any], fail: Fail) -> tuple[dict[str, Any], tuple[str, ...]]:
    """The ``data:`` block (a name alone is ``{name: ...}``) and the data module's augment presets."""
    from cnnbench.data import DATA

    data = raw["data"]
    if isinstance(data, str):
        data = {"name": data}
    if not isinstance(data, dict) or "name" not in data:
        raise fail("data", "give {name: <data module>, ...arguments}")
    if data["name"] not in DATA:
        raise fail("data.name", DATA.unknown_message(str(data["name"])))
    data_cls = DATA.get(data["name"])
    data_args = accepted_kwargs(data_cls)
    for key in data:
        if key in DATA_LINKED:
            if key != "augment" or "augment" in raw:
                raise fail(f"data.{key}", f"set by {DATA_LINKED[key]}, not in data:")
        elif key != "name" and data_args is not None and key not in data_args:
            what = f"data module {data['name']!r}"
            raise fail(f"data.{key}", unknown_argument(key, data_args - set(DATA_LINKED), what))
    presets = tuple(getattr(data_cls, "augment_presets", {DEFAULT_AUGMENT: None}))
    return dict(data), presets  # the augment axis carries ``augment``, per cell


def model_entries(raw: dict[str, Any], fail: Fail) -> list[ModelEntry]:
    """The ``models:`` axis: registered models whose arguments exist and that take the grid's axes."""
    return [_model_entry(entry, raw, fail) for entry in axis_values(raw, _axis("model"), fail, [])]


def _model_entry(entry: Any, raw: dict[str, Any], fail: Fail) -> ModelEntry:
    from cnnbench.models import MODELS

    if isinstance(entry, str):
        item = ModelEntry(entry)
    elif isinstance(entry, dict):
        item = ModelEntry(entry.get("name", ""), dict(entry.get("args") or {}))
    else:
        raise fail("models", MODELS.unknown_message(str(entry)))
    try:
        model_cls = MODELS.get(item.name)  # unknown, or a plugin that failed to import: one line
    except ValueError as err:
        raise fail("models", str(err)) from None
    problem = getattr(model_cls, "plugin_problem", None)
    if problem:
        raise fail(f"models.{item.name}", str(problem))
    linked = sorted(set(item.args) & MODEL_LINKED)
    if linked:
        raise fail(f"models.{item.name}.args.{linked[0]}", "set by the data module or a grid axis, not per model")
    model_args = accepted_kwargs(model_cls)
    needed = ["pool", "padding"] + (
        ["padding_mode"] if raw.get("padding_mode", [ZEROS]) not in (ZEROS, [ZEROS]) else []
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
            raise fail(f"models.{item.name}.args.{key}", unknown_argument(key, model_args, f"model {item.name!r}"))
    return item


def trainer_block(trainer: dict[str, Any], fail: Fail) -> dict[str, Any]:
    """``trainer:``: Lightning Trainer arguments, except those a grid axis sets."""
    import lightning as L

    trainer_params = (accepted_kwargs(L.Trainer.__init__) or set()) - {"self"}
    for key in trainer:
        if key not in trainer_params:
            raise fail(f"trainer.{key}", f"not a Trainer argument{_hint(key, trainer_params)}")
        if key in ("max_epochs", "max_steps") and (
            not isinstance(trainer[key], int) or trainer[key] == 0 or trainer[key] < -1
        ):
            raise fail(f"trainer.{key}", f"must be a positive integer (or -1), got {trainer[key]!r}")
        if key in ("precision", "devices"):
            raise fail(f"trainer.{key}", f"use the top-level '{key}' axis")
    return trainer


def robustness_block(robustness: dict[str, Any], fail: Fail) -> dict[str, Any]:
    """``robustness:``: the probes' settings, completed with :data:`ROBUSTNESS_DEFAULTS`."""
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
    return robustness


def exclusions(entries: Any, fail: Fail, cell: type[Cell] = Cell) -> list[dict[str, Any]]:
    """Check ``exclude:``: a list of partial coordinates; a cell matching every key of one entry is dropped."""
    if not isinstance(entries, list) or not all(isinstance(e, dict) and e for e in entries):
        raise fail("exclude", "a list of mappings of coordinates, e.g. [{padding: valid, padding_mode: background}]")
    keys = tuple(a.name for a in cell.axes())
    for entry in entries:
        for key in entry:
            if key not in keys:
                raise fail(f"exclude.{key}", f"not a coordinate; valid: {', '.join(keys)}")
    return [dict(e) for e in entries]


def _resources(raw: Any, source: str) -> dict[str, float]:
    from cnnbench.bench.resources import parse_resources

    try:
        return parse_resources(raw, source)
    except ValueError as err:
        raise GridError(str(err)) from None
