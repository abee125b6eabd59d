"""``cnnbench models [PATTERN]``: the registered models as a table, fast.

The table is cached under ``$XDG_CACHE_HOME/cnnbench`` keyed by the model sources and
installed plugins (:func:`registry_key`), so a repeated call imports neither torch nor
Lightning.

Example:
    >>> key = registry_key()
    >>> len(key) == 64
    True
"""

from __future__ import annotations

import hashlib
import json
import os
from importlib.metadata import entry_points
from pathlib import Path

from cnnbench.core.atomic import write_text_atomic

USAGE = "usage: cnnbench models [PATTERN]   (fnmatch pattern, e.g. 'alexnet*')"


def run(args: list[str]) -> int:
    """``cnnbench models [PATTERN]``: print the table of registered models."""
    if args and args[0] in ("-h", "--help"):
        print(USAGE)
        return 0
    print(models_table(args[0] if args else "*"))
    return 0


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
                write_text_atomic(cache, json.dumps({"key": key, "rows": rows}))
        except OSError:
            pass  # a read-only home: just slower next time
    rows = [r for r in rows if fnmatch.fnmatchcase(r[0], pattern.lower())]
    table = [["name", "params", "input", "data", "description"], *rows]
    widths = [max(len(r[i]) for r in table) for i in range(4)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r[:4], widths)) + "  " + r[4] for r in table)
