"""Result files of grid cells: one JSON file per cell, written atomically, read back whole or not at all.

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
from pathlib import Path
from typing import Any

from cnnbench.core.atomic import write_json_atomic, write_text_atomic

__all__ = ["RESULT_SUFFIX", "load_results", "read_result", "write_json_atomic", "write_text_atomic"]

RESULT_SUFFIX = ".json"


def read_result(path: Path) -> dict[str, Any] | None:
    """A finished result, or None for a missing or unreadable file."""
    try:
        payload = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return payload if isinstance(payload, dict) and "status" in payload else None


def load_results(out: str | Path) -> list[dict[str, Any]]:
    """Every complete result under ``out/results`` (temporary files are ignored)."""
    folder = Path(out) / "results"
    results = [read_result(p) for p in sorted(folder.glob(f"*{RESULT_SUFFIX}")) if not p.name.startswith(".")]
    return [r for r in results if r is not None]
