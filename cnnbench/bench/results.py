"""Result files of grid cells: one JSON file per cell, written atomically.

Kept apart from :mod:`cnnbench.bench.cell` so that importing the runner (and the
``cnnbench.bench`` package) never imports ``cell``: ``python -m cnnbench.bench.cell`` then
runs it without runpy's "found in sys.modules" warning.

Example:
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / f"demo{RESULT_SUFFIX}"
    >>> write_json_atomic(path, {"status": "ok"}); json.loads(path.read_text())
    {'status': 'ok'}
"""

from __future__ import annotations

import json  # noqa: F401  (the doctest)
from pathlib import Path  # noqa: F401

from cnnbench.core.atomic import write_json_atomic, write_text_atomic

__all__ = ["RESULT_SUFFIX", "write_json_atomic", "write_text_atomic"]

RESULT_SUFFIX = ".json"
