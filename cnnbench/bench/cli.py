"""``cnnbench bench`` and ``cnnbench report``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

from cnnbench.bench.grid import GridSpec, expand, find_grid, grid_listing, parse_shard


def sweep_config(spec: GridSpec, grid_path: str, out: str) -> dict[str, Any]:
    """The W&B sweep (method ``grid``) whose agents each run one cell through ``cnnbench bench``."""
    params: dict[str, Any] = {
        "model": {"values": [m.label for m in spec.models]}, "pool": {"values": spec.pool},
        "padding": {"values": [str(p) for p in spec.padding]}, "padding_mode": {"values": spec.padding_mode},
        "precision": {"values": spec.precision}, "devices": {"values": spec.devices}, "seed": {"values": spec.seeds},
        "augment": {"values": spec.augment},
    }  # fmt: skip
    return {
        "name": spec.name, "method": "grid", "program": "cnnbench", "parameters": params,
        "command": ["${env}", "cnnbench", "bench", grid_path, "--out", out, "${args}"],
    }  # fmt: skip


def bench_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="cnnbench bench", description="Run a pooling × padding ablation grid.")
    parser.add_argument(
        "grid", nargs="?", help="a shipped grid's name (smoke, mnist, ...: see --list) or a grid YAML file"
    )
    parser.add_argument("--list", action="store_true", help="list the grids shipped with cnnbench and exit")
    parser.add_argument("--out", required=False, help="output folder (default: results/<grid name>)")
    parser.add_argument(
        "--workers", type=int, default=None,
        help="runs at once, each in its own process with cores/workers CPU threads (default 1; "
        "with --launcher ray: as many as the cluster holds)",
    )  # fmt: skip
    parser.add_argument(
        "--launcher", choices=("fork", "subprocess", "ray"), default="fork",
        help="fork: cells forked from one process that imported torch and read the data once (default); "
        "subprocess: a fresh Python per cell. Multi-device cells always run as subprocesses; "
        'ray: every cell on a Ray cluster, results written here (pip install "cnnbench[ray]")',
    )  # fmt: skip
    parser.add_argument(
        "--ray-address", default=None,
        help="with --launcher ray: auto or HOST:PORT of a running cluster (default: start a local Ray instance)",
    )  # fmt: skip
    parser.add_argument(
        "--retries", type=int, default=2, help="with --launcher ray: reruns of a cell whose worker died"
    )
    parser.add_argument("--cpus-per-cell", type=float, default=None, help="with --launcher ray: CPUs per cell")
    parser.add_argument(
        "--gpus-per-cell", type=float, default=None, help="with --launcher ray: GPUs per cell (0.25: 4 share one)"
    )
    parser.add_argument("--shard", default="0/1", help="run only slice i of n (i/n), e.g. for a SLURM job array")
    parser.add_argument("--retry-failed", action="store_true", help="run again the runs that failed")
    parser.add_argument("--no-wandb", action="store_true", help="do not log to W&B")
    parser.add_argument("--keep-checkpoints", action="store_true", help="keep every run's checkpoints")
    parser.add_argument("--timeout", type=float, default=None, help="seconds before a run is killed (failed)")
    parser.add_argument("--no-report", action="store_true", help="skip the report at the end")
    parser.add_argument("--emit-wandb-sweep", action="store_true", help="write the W&B sweep config and exit")
    parser.add_argument("--dry-run", action="store_true", help="list the runs of this shard and exit")
    for axis in ("model", "pool", "padding", "padding_mode", "precision", "devices", "augment", "seed"):
        parser.add_argument(f"--{axis}", default=None, help=f"run only cells with this {axis} (W&B sweep agents)")
    args = parser.parse_args(argv)
    if args.list:
        print(grid_listing())
        return 0
    if args.grid is None:
        parser.error("give a grid: a shipped grid's name (cnnbench bench --list) or a YAML file")

    spec = GridSpec.load(find_grid(args.grid))
    out = Path(args.out or Path("results") / spec.name)
    index, count = parse_shard(args.shard)
    if args.emit_wandb_sweep:
        out.mkdir(parents=True, exist_ok=True)
        path = out / "sweep.yaml"
        path.write_text(yaml.safe_dump(sweep_config(spec, args.grid, str(out)), sort_keys=False))
        print(f"wrote {path}; start it with: wandb sweep {path} && wandb agent <sweep id>")
        return 0
    only = {
        k: v
        for k in ("model", "pool", "padding", "padding_mode", "precision", "devices", "augment", "seed")
        if (v := getattr(args, k)) is not None
    }
    if args.dry_run:
        from cnnbench.bench.grid import shard

        for cell in shard(expand(spec), index, count):
            print(cell.run_id)
        return 0
    from cnnbench.bench.report import write_report
    from cnnbench.bench.runner import run_grid

    ray = None
    if args.launcher == "ray":
        from cnnbench.bench.ray_launcher import RayOptions, import_ray

        import_ray()  # before anything else: one line saying how to install it
        ray = RayOptions(args.ray_address, args.retries, args.cpus_per_cell, args.gpus_per_cell)
    outcome = run_grid(
        spec, out, workers=args.workers if args.workers is not None else (0 if ray else 1), shard_index=index,
        shard_count=count, retry_failed=args.retry_failed, wandb=not args.no_wandb, keep_checkpoints=args.keep_checkpoints,
        timeout=args.timeout, only=only or None, launcher=args.launcher, ray=ray,
    )  # fmt: skip
    counts: dict[str, int] = {}
    for status in outcome.statuses.values():
        counts[status] = counts.get(status, 0) + 1
    print(
        f"{spec.name}: {len(outcome.ran)} ran, {len(outcome.skipped)} already done; "
        + ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    )
    questions = Path(spec.source).with_suffix(".questions.yaml")  # <grid>.questions.yaml travels with the results
    if questions.is_file():
        (out / "questions.yaml").write_text(questions.read_text())
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
    run = wandb.init(project="cnnbench", group=spec.name, name=f"{spec.name}-results", job_type="report", dir=str(out), mode=mode,
                     settings=wandb.Settings(init_timeout=30, silent=True))  # fmt: skip
    columns = list(rows[0])
    run.log({"results": wandb.Table(columns=columns, data=[[r[c] for c in columns] for r in rows])})
    run.finish()


def report_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="cnnbench report", description="Summarise a grid's results folder.")
    parser.add_argument("out", help="the folder given to `cnnbench bench --out`")
    parser.add_argument("--no-plots", action="store_true")
    parser.add_argument(
        "--resolution", type=float, default=0.5,
        help="points within which an exploratory comparison reads 'within ±resolution' (questions set their own δ)",
    )  # fmt: skip
    parser.add_argument(
        "--questions", default=None,
        help="questions YAML (claims, contrasts, δ) to answer first in REPORT.md (default: OUT/questions.yaml if present)",
    )  # fmt: skip
    parser.add_argument(
        "--format",
        choices=("png", "pdf", "svg"),
        default="png",
        help="figure file format (the previous report's figures, any format, are replaced)",
    )
    parser.add_argument(
        "--chance-margin", type=float, default=10.0,
        help="accuracy points above chance within which a cell is flagged and left out of consistency comparisons",
    )  # fmt: skip
    args = parser.parse_args(argv)
    from cnnbench.bench.questions import QuestionError
    from cnnbench.bench.report import write_report

    try:
        paths = write_report(args.out, plots=not args.no_plots, resolution=args.resolution / 100,
                             questions=args.questions, fmt=args.format, chance_margin=args.chance_margin / 100)  # fmt: skip
    except (QuestionError, ValueError) as err:
        print(f"cnnbench report: {err}", file=sys.stderr)
        return 2
    for kind, path in paths.items():
        print(f"{kind:>10}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(bench_main(sys.argv[1:]))
