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

import json
import os
from pathlib import Path
from typing import Any

RESULT_SUFFIX = ".json"


def write_json_atomic(path: Path, payload: dict[str, Any]) -> None:
    """Write to a temporary file in the same folder, fsync, then rename into place."""
    write_text_atomic(path, json.dumps(payload, indent=1, sort_keys=True, default=str))


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to a temporary file in the same folder, fsync, then rename into place
    (a reader sees the old file or the whole new one, never a part)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
