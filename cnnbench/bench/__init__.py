"""The ablation runner: grids of model × pool × padding × precision × seed."""

from cnnbench.bench.grid import Cell, GridError, GridSpec, expand, shard
from cnnbench.bench.runner import load_results, run_grid

__all__ = ["Cell", "GridError", "GridSpec", "expand", "load_results", "run_grid", "shard"]
