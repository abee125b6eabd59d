"""What one grid cell asks of a cluster: CPUs and (possibly fractional) GPUs per cell.

A grid may say ``resources: {cpus_per_cell: 2, gpus_per_cell: 0.25}``; ``cnnbench bench
--launcher ray`` (:mod:`cnnbench.bench.ray_launcher`) turns that into each Ray actor's
``num_cpus`` / ``num_gpus``, and ``--cpus-per-cell`` / ``--gpus-per-cell`` override it.
The other launchers ignore the block (they size cells with ``--workers``).

Example:
    >>> parse_resources({"gpus_per_cell": 0.25})
    {'gpus_per_cell': 0.25}
    >>> cell_demand(devices=1, cpus_per_cell=2, gpus_per_cell=0.25)
    {'num_cpus': 2.0, 'num_gpus': 0.25}
    >>> cell_demand(devices=4, cpus_per_cell=2, gpus_per_cell=0.25)  # DDP: whole GPUs, one per rank, one node
    {'num_cpus': 8.0, 'num_gpus': 4.0}
"""

from __future__ import annotations

import math
from typing import Any

RESOURCE_KEYS = ("cpus_per_cell", "gpus_per_cell")


def parse_resources(raw: Any, source: str = "<dict>") -> dict[str, float]:
    """A grid's ``resources:`` block, checked: known keys, non-negative numbers (CPUs > 0)."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ValueError(f"{source}: resources: a mapping of {', '.join(RESOURCE_KEYS)}")
    out: dict[str, float] = {}
    for key, value in raw.items():
        if key not in RESOURCE_KEYS:
            raise ValueError(f"{source}: resources.{key}: unknown key; valid: {', '.join(RESOURCE_KEYS)}")
        low_ok = value > 0 if key == "cpus_per_cell" else value >= 0
        if isinstance(value, bool) or not isinstance(value, int | float) or not low_ok:
            bound = "> 0" if key == "cpus_per_cell" else ">= 0"
            raise ValueError(f"{source}: resources.{key}: a number {bound}, got {value!r}")
        out[key] = value
    return out


def cell_demand(devices: int, cpus_per_cell: float, gpus_per_cell: float) -> dict[str, float]:
    """Ray resources of one cell: a single-device cell takes its share as given (several
    cells can share one GPU); a DDP cell of ``devices`` ranks takes ``cpus_per_cell`` and
    at least one whole GPU per rank (none on a CPU-only grid), all on one node, because one
    actor holds them and Lightning starts the ranks as local processes."""
    if devices <= 1:
        return {"num_cpus": float(cpus_per_cell), "num_gpus": float(gpus_per_cell)}
    gpus = devices * math.ceil(gpus_per_cell) if gpus_per_cell > 0 else 0
    return {"num_cpus": float(cpus_per_cell) * devices, "num_gpus": float(gpus)}
