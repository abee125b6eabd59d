"""``cnnbench bench``: run a pooling × padding ablation grid (or list, dry-run, shard it).

Example:
    $ cnnbench bench smoke --out results/smoke
    $ cnnbench bench mnist --shard 0/4 --no-wandb

    >>> build_parser().parse_args(["smoke", "--pool", "avg"]).pool
    'avg'
"""

from __future__ import annotations

import argparse
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cnnbench.bench.grid import GridSpec

#: the grid axes a sweep agent (or a user) can pin with ``--AXIS VALUE``: the coordinates of a
#: cell (:class:`cnnbench.bench.grid.Cell`) without the model's arguments and label
NOT_AXES = ("model_args", "model_label")


def grid_axes() -> tuple[str, ...]:
    """The coordinates of a grid cell, in :class:`~cnnbench.bench.grid.Cell`'s order.

    Example:
        >>> grid_axes()[:3]
        ('model', 'pool', 'padding')
    """
    from cnnbench.bench.grid import Cell

    return tuple(f.name for f in fields(Cell) if f.name not in NOT_AXES)


def sweep_config(spec: GridSpec, grid_path: str, out: str) -> dict[str, Any]:
    """The W&B sweep (method ``grid``) whose agents each run one cell through ``cnnbench bench``."""
    values: dict[str, list[Any]] = {
        "model": [m.label for m in spec.models],
        "pool": spec.pool,
        "padding": [str(p) for p in spec.padding],
        "padding_mode": spec.padding_mode,
        "precision": spec.precision,
        "devices": spec.devices,
        "seed": spec.seeds,
        "augment": spec.augment,
    }
    return {
        "name": spec.name,
        "method": "grid",
        "program": "cnnbench",
        "parameters": {axis: {"values": axis_values} for axis, axis_values in values.items()},
        "command": ["${env}", "cnnbench", "bench", grid_path, "--out", out, "${args}"],
    }


def build_parser() -> argparse.ArgumentParser:
    """The ``cnnbench bench`` argument parser (no heavy imports)."""
    parser = argparse.ArgumentParser(prog="cnnbench bench", description="Run a pooling × padding ablation grid.")
    add = parser.add_argument
    add("grid", nargs="?", help="a shipped grid's name (smoke, mnist, ...: see --list) or a grid YAML file")
    add("--list", action="store_true", help="list the grids shipped with cnnbench and exit")
    add("--out", required=False, help="output folder (default: results/<grid name>)")
    add(
        "--workers",
        type=int,
        default=None,
        help="runs at once, each in its own process with cores/workers CPU threads (default 1; "
        "with --launcher ray: as many as the cluster holds)",
    )
    add(
        "--launcher",
        choices=("fork", "subprocess", "ray"),
        default="fork",
        help="fork: cells forked from one process that imported torch and read the data once (default); "
        "subprocess: a fresh Python per cell. Multi-device cells always run as subprocesses; "
        'ray: every cell on a Ray cluster, results written here (pip install "cnnbench[ray]")',
    )
    add(
        "--ray-address",
        default=None,
        help="with --launcher ray: auto or HOST:PORT of a running cluster (default: start a local Ray instance)",
    )
    add("--retries", type=int, default=2, help="with --launcher ray: reruns of a cell whose worker died")
    add("--cpus-per-cell", type=float, default=None, help="with --launcher ray: CPUs per cell")
    add("--gpus-per-cell", type=float, default=None, help="with --launcher ray: GPUs per cell (0.25: 4 share one)")
    add("--shard", default="0/1", help="run only slice i of n (i/n), e.g. for a SLURM job array")
    add("--retry-failed", action="store_true", help="run again the runs that failed")
    add("--no-wandb", action="store_true", help="do not log to W&B")
    add("--keep-checkpoints", action="store_true", help="keep every run's checkpoints")
    add("--timeout", type=float, default=None, help="seconds before a run is killed (failed)")
    add("--no-report", action="store_true", help="skip the report at the end")
    add("--emit-wandb-sweep", action="store_true", help="write the W&B sweep config and exit")
    add("--dry-run", action="store_true", help="list the runs of this shard and exit")
    for axis in grid_axes():
        add(f"--{axis}", default=None, help=f"run only cells with this {axis} (W&B sweep agents)")
    return parser


def run(argv: list[str]) -> int:
    """``cnnbench bench GRID [--out DIR] [--workers N] ...``; returns 1 when a run failed."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.list:
        from cnnbench.bench.grid import grid_listing

        print(grid_listing())
        return 0
    if args.grid is None:
        parser.error("give a grid: a shipped grid's name (cnnbench bench --list) or a YAML file")
    from cnnbench.bench.grid import GridSpec, expand, find_grid, parse_shard, shard

    spec = GridSpec.load(find_grid(args.grid))
    out = Path(args.out or Path("results") / spec.name)
    index, count = parse_shard(args.shard)
    if args.emit_wandb_sweep:
        return _emit_sweep(spec, args.grid, out)
    if args.dry_run:
        for cell in shard(expand(spec), index, count):
            print(cell.run_id)
        return 0
    return _run_grid(spec, args, out, index, count)


def _emit_sweep(spec: GridSpec, grid: str, out: Path) -> int:
    """``--emit-wandb-sweep``: write ``OUT/sweep.yaml`` and say how to start it."""
    import yaml

    from cnnbench.core.atomic import write_text_atomic

    path = out / "sweep.yaml"
    write_text_atomic(path, yaml.safe_dump(sweep_config(spec, grid, str(out)), sort_keys=False))
    print(f"wrote {path}; start it with: wandb sweep {path} && wandb agent <sweep id>")
    return 0


def _run_grid(spec: GridSpec, args: argparse.Namespace, out: Path, index: int, count: int) -> int:
    """Run this shard's cells, print the counts, copy the grid's questions and write the report."""
    from cnnbench.bench.report import write_report
    from cnnbench.bench.runner import run_grid
    from cnnbench.core.atomic import write_text_atomic

    ray = None
    if args.launcher == "ray":
        from cnnbench.bench.ray_launcher import RayOptions, import_ray

        import_ray()  # before anything else: one line saying how to install it
        ray = RayOptions(args.ray_address, args.retries, args.cpus_per_cell, args.gpus_per_cell)
    only = {axis: value for axis in grid_axes() if (value := getattr(args, axis)) is not None}
    outcome = run_grid(
        spec,
        out,
        workers=args.workers if args.workers is not None else (0 if ray else 1),
        shard_index=index,
        shard_count=count,
        retry_failed=args.retry_failed,
        wandb=not args.no_wandb,
        keep_checkpoints=args.keep_checkpoints,
        timeout=args.timeout,
        only=only or None,
        launcher=args.launcher,
        ray=ray,
    )
    counts: dict[str, int] = {}
    for status in outcome.statuses.values():
        counts[status] = counts.get(status, 0) + 1
    print(
        f"{spec.name}: {len(outcome.ran)} ran, {len(outcome.skipped)} already done; "
        + ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    )
    questions = Path(spec.source).with_suffix(".questions.yaml")  # <grid>.questions.yaml travels with the results
    if questions.is_file():
        write_text_atomic(out / "questions.yaml", questions.read_text())
    if not args.no_report:
        paths = write_report(out, spec.name)
        print(f"report: {paths['report']}")
        if not args.no_wandb:
            _log_grid_table(spec, out)
    return 1 if outcome.failed else 0


def _log_grid_table(spec: GridSpec, out: Path) -> None:
    """One W&B run per grid holding the table of all results (offline without credentials)."""
    import csv

    from cnnbench.training import wandb_credentials_configured

    try:
        import wandb
    except ImportError:
        return
    with (out / "results.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        return
    mode: Any = "online" if wandb_credentials_configured() else "offline"
    run = wandb.init(
        project="cnnbench",
        group=spec.name,
        name=f"{spec.name}-results",
        job_type="report",
        dir=str(out),
        mode=mode,
        settings=wandb.Settings(init_timeout=30, silent=True),
    )
    columns = list(rows[0])
    run.log({"results": wandb.Table(columns=columns, data=[[r[c] for c in columns] for r in rows])})
    run.finish()
