"""Help and listings of the ``cnnbench`` command that must start fast.

* :func:`model_options_help`: the model's and data set's own options (with their
  choices), printed at the top of ``cnnbench fit --model M --help``.
* :func:`models_table`: ``cnnbench models``; the table is cached under
  ``$XDG_CACHE_HOME/cnnbench`` keyed by the model sources and installed plugins, so a
  repeated call imports neither torch nor Lightning.
* :func:`check_kwargs`: unknown keyword arguments of ``summary`` with close matches.

Example:
    >>> key = registry_key()
    >>> len(key) == 64
    True
"""

from __future__ import annotations

import difflib
import hashlib
import inspect
import json
import os
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from cnnbench.core.vocab import LINKED_ARGUMENTS

#: init arguments the CLI fills in from the data set (never typed by the user)
LINKED = LINKED_ARGUMENTS


#: help for arguments whose class docstring does not describe them
FALLBACK_HELP = {
    "pool": "Pooling operator of every pooling layer.",
    "padding": "Convolution padding rule, or a number of pixels.",
    "padding_mode": "Value of the padded border pixels.",
    "image_size": "Side in pixels of the images the model sees.",
}


def choices_of(cls: Any, argument: str) -> tuple[str, ...]:
    """Valid values of a string knob of a model or data module class (empty if free-form)."""
    from cnnbench.data.base import LOADERS
    from cnnbench.models.base import OPTIMIZERS, SCHEDULERS
    from cnnbench.models.layers import PADDING_MODES, PADDINGS, POOL_KINDS

    known: dict[str, tuple[str, ...]] = {
        "pool": POOL_KINDS,
        "padding": (*PADDINGS, "<int>"),
        "padding_mode": PADDING_MODES,
        "optimizer": OPTIMIZERS,
        "scheduler": SCHEDULERS,
        "loader": LOADERS,
        "on_device": ("auto", "true", "false"),
    }
    if argument == "augment" and getattr(cls, "augment_presets", None):
        return tuple(cls.augment_presets)
    return known.get(argument, ())


def _arguments(cls: Any, prefix: str) -> list[Any]:
    """jsonargparse's view of ``cls``'s init arguments (types, defaults, docstring help)."""
    from jsonargparse import ArgumentParser

    parser = ArgumentParser()
    parser.add_class_arguments(cls, prefix)
    return [a for a in parser._actions if a.dest.startswith(prefix + ".")]


def _section(title: str, cls: Any, prefix: str, skip: tuple[str, ...] = ()) -> list[str]:
    lines = [title]
    for action in _arguments(cls, prefix):
        arg = action.dest.split(".", 1)[1]
        if arg in skip:
            continue
        choices = choices_of(cls, arg)
        shown = "{" + ",".join(choices) + "}" if choices else ""
        help_text = " ".join(str(action.help or "").split()) or FALLBACK_HELP.get(arg, "")
        default = action.default if not isinstance(action.default, str) else repr(action.default)
        lines.append(f"  --{prefix}.{arg} {shown}".rstrip())
        lines.append(f"      {help_text} (default: {default})".replace("  (default", " (default"))
    return lines


def model_options_help(model_name: str, model_cls: Any, data_name: str | None, data_cls: Any) -> str:
    """The model's and the data set's own options, for the top of ``fit --help``."""
    lines = _section(
        f"Options of model {model_name!r} ({model_cls.__module__}.{model_cls.__name__}):", model_cls, "model", LINKED
    )
    if data_cls is not None:
        lines += [
            "",
            *_section(f"Options of data {data_name!r} ({data_cls.__module__}.{data_cls.__name__}):", data_cls, "data"),
        ]
    lines += ["", "Lightning's options (trainer, config files) follow.", "=" * 79, ""]
    return "\n".join(lines)


def check_kwargs(cls: Any, kwargs: dict[str, Any], prefix: str, name: str) -> None:
    """Raise a one-line ValueError for a keyword ``cls`` does not take, with close matches."""
    valid = [a.dest.split(".", 1)[1] for a in _arguments(cls, prefix)] if inspect.isclass(cls) else []
    for key in kwargs:
        if valid and key not in valid:
            close = difflib.get_close_matches(key, valid, n=2, cutoff=0.6)
            hint = f" Did you mean {' or '.join('--' + prefix + '.' + c for c in close)}?" if close else ""
            shown = ", ".join(f"--{prefix}.{v}" for v in valid if v not in LINKED)
            raise ValueError(f"--{prefix}.{key} is not an option of {prefix} {name!r}.{hint}\n  Valid: {shown}")


# ----------------------------------------------------------------------------- cached models table
def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "cnnbench"


def registry_key() -> str:
    """Hash of what the models table depends on: cnnbench's version and model sources,
    and every installed ``cnnbench.models`` plugin (name, target, distribution version,
    source file when it can be found without importing it)."""
    import cnnbench

    parts = [cnnbench.__version__]
    models_dir = Path(cnnbench.__file__).parent / "models"
    for f in sorted(models_dir.glob("*.py")):
        st = f.stat()
        parts.append(f"{f.name}:{st.st_mtime_ns}:{st.st_size}")
    for ep in sorted(entry_points(group="cnnbench.models"), key=lambda e: e.name):
        dist = getattr(ep, "dist", None)
        parts.append(f"{ep.name}={ep.value}@{getattr(dist, 'version', '?')}:{getattr(dist, '_path', '')}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def _compute_rows() -> list[list[str]]:
    import torch

    from cnnbench.models import MODELS, create_model

    rows = []
    for name in MODELS.names():
        entry = MODELS.get(name)
        doc = (entry.__doc__ or "").strip().splitlines()
        try:  # a plugin that cannot be built gets its reason on its own row, never hides the others
            with torch.device("meta"):  # shapes and counts only: no memory for AlexNet's 61 M weights
                model = create_model(name)
        except Exception as err:
            rows.append([name, "?", "?", str(getattr(entry, "default_data", "")), f"cannot be built: {err}"])
            continue
        params = sum(p.numel() for p in model.parameters())
        shape = "×".join(map(str, getattr(model, "input_shape", ()))) or "?"
        rows.append([name, f"{params:,}", shape, str(getattr(entry, "default_data", "")), doc[0] if doc else ""])
    rows += [[name, "?", "?", "", f"broken plugin: {why}"] for name, why in sorted(MODELS.broken().items())]
    return sorted(rows)


def models_table(pattern: str = "*") -> str:
    """``cnnbench models [PATTERN]`` as text (cached; see the module docstring)."""
    import fnmatch

    key = registry_key()
    cache = _cache_dir() / "models-table.json"
    rows: list[list[str]] | None = None
    try:
        stored = json.loads(cache.read_text())
        rows = stored["rows"] if stored.get("key") == key else None
    except (OSError, ValueError, KeyError, TypeError):
        rows = None
    if rows is None:
        rows = _compute_rows()
        cacheable = not any(r[1] == "?" for r in rows)  # a broken plugin's fix may keep its version: recheck it
        try:
            if cacheable:
                cache.parent.mkdir(parents=True, exist_ok=True)
                tmp = cache.with_name(f".{cache.name}.{os.getpid()}")
                tmp.write_text(json.dumps({"key": key, "rows": rows}))
                os.replace(tmp, cache)
        except OSError:
            pass  # a read-only home: just slower next time
    rows = [r for r in rows if fnmatch.fnmatchcase(r[0], pattern.lower())]
    table = [["name", "params", "input", "data", "description"], *rows]
    widths = [max(len(r[i]) for r in table) for i in range(4)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r[:4], widths)) + "  " + r[4] for r in table)
