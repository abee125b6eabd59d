"""Where a grid cell's time goes: fixed cost, training and evaluation, fork server vs one Python per cell vs Ray.

Runs one small grid (default: LeNet-5 × max/avg × 2 seeds = 4 cells of 2 training steps,
one test batch, a minimal robustness pass) once per launcher, in one process, and prints
per cell and in total:

* fixed cost: launch → first training step, plus end of evaluation → process exit;
* training (first step → end of fit, less validation), evaluation (validation, test,
  robustness), the rest, and the cell's wall time;
* the grid's wall time and the fork server's start-up (paid once per grid; for ``ray``: the
  first actor's creation up to its fork server being ready, and, printed apart, the start of
  the local Ray instance, paid once per cluster);
* the time of a bare ``python -c "import torch, lightning"`` measured in the same run
  (median of 3): the goal is a fixed cost per cell of at most half of it.

Without ``--data-root`` the cells read MNIST-sized files of random digits (60,000 + 10,000
images, the real files' format and size) written to a temporary folder.

    python benchmarks/bench_grid.py
    python benchmarks/bench_grid.py --data-root ../shared/data --launchers fork subprocess ray
    python benchmarks/bench_grid.py --accelerator gpu --workers 2
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from cnnbench.bench.grid import GridSpec
from cnnbench.bench.runner import cpu_share, load_results, run_grid
from cnnbench.bench.timing import breakdown

COLUMNS = ("start_s", "exit_s", "fixed_s", "train_s", "eval_s", "other_s", "wall_s")


def bare_import_seconds(rounds: int = 3) -> list[float]:
    """Wall seconds of ``python -c "import torch, lightning"``, ``rounds`` times."""
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import torch, lightning"], check=True)
        times.append(time.perf_counter() - start)
    return times


def write_mnist_sized_files(root: Path) -> Path:
    """Random digits in MNIST's IDX files, at MNIST's size (what a cell reads and decodes)."""
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 60_000), ("t10k", 10_000)):
        for kind, shape in (("images", (n, 28, 28)), ("labels", (n,))):
            data = rng.integers(0, 256 if kind == "images" else 10, shape, dtype=np.uint8)
            header = bytes([0, 0, 0x08, len(shape)]) + b"".join(d.to_bytes(4, "big") for d in shape)
            (raw / f"{prefix}-{kind}-idx{len(shape)}-ubyte").write_bytes(header + data.tobytes())
    return root


def grid(root: Path, steps: int, accelerator: str) -> dict[str, Any]:
    return {
        "name": "bench-grid",
        "data": {"name": "mnist", "root": str(root), "download": False, "verify": False, "augment": "none"},
        "models": ["lenet5"],
        "pool": ["max", "avg"],
        "padding": ["same"],
        "seeds": [0, 1],
        "trainer": {
            "max_steps": steps,
            "limit_val_batches": 1,
            "limit_test_batches": 1,
            "num_sanity_val_steps": 0,
            "accelerator": accelerator,
        },
        "robustness": {"shifts": [1], "max_images": 64},
    }


def start_ray(cpus: int) -> float:
    """Start a local Ray instance with ``cpus`` CPUs; its start-up seconds."""
    import ray

    started = time.perf_counter()
    ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
    return time.perf_counter() - started


def run_launcher(spec: GridSpec, out: Path, launcher: str, workers: int) -> dict[str, Any]:
    options = None
    if launcher == "ray":
        from cnnbench.bench.ray_launcher import RayOptions

        # the same CPU threads per cell as the fork launcher's, and the same number of cells at once
        options = RayOptions(cpus_per_cell=cpu_share(workers))
    started = time.perf_counter()
    outcome = run_grid(spec, out, workers=workers, wandb=False, launcher=launcher, log=io.StringIO(), ray=options)
    wall = time.perf_counter() - started
    cells = {r["run_id"]: breakdown(r) for r in load_results(out)}
    bad = [r["run_id"] for r in load_results(out) if r["status"] != "ok"]
    if bad:
        raise SystemExit(f"{launcher}: cells did not finish: {bad}; see {out / 'logs'}")
    return {"wall_s": wall, "server_ready_s": outcome.server_ready_s, "cells": cells}


def print_table(name: str, measured: dict[str, Any]) -> None:
    print(f"{'launcher':<11}{'cell':<44}" + "".join(f"{c[:-2]:>8}" for c in COLUMNS))
    for run_id, row in measured["cells"].items():
        print(f"{name:<11}{run_id:<44}" + "".join(f"{row[c]:8.2f}" for c in COLUMNS))
    cells = list(measured["cells"].values())
    means = {c: statistics.mean(r[c] for r in cells) for c in COLUMNS}
    print(f"{name:<11}{'mean of ' + str(len(cells)) + ' cells':<44}" + "".join(f"{means[c]:8.2f}" for c in COLUMNS))
    server = measured["server_ready_s"]
    what = "first Ray actor's fork server" if name == "ray" else "fork server"
    extra = f", {what} ready after {server:.2f} s (once per grid)" if server is not None else ""
    print(f"{name:<11}grid wall {measured['wall_s']:.2f} s{extra}\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-root", help="folder holding MNIST/raw (default: MNIST-sized random files)")
    parser.add_argument(
        "--launchers",
        nargs="+",
        choices=["fork", "subprocess", "ray"],
        default=["fork", "subprocess", *(["ray"] if importlib.util.find_spec("ray") else [])],
    )
    parser.add_argument("--steps", type=int, default=2, help="training steps per cell")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--accelerator", default="cpu", help="cpu, gpu or auto")
    parser.add_argument("--import-rounds", type=int, default=3)
    parser.add_argument("--json", help="also write the measurements to this file")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-grid-") as tmp:
        root = Path(args.data_root) if args.data_root else write_mnist_sized_files(Path(tmp) / "data")
        spec = GridSpec.from_dict(grid(root, args.steps, args.accelerator))
        imports = bare_import_seconds(args.import_rounds)
        ray_start = start_ray(cpu_share(1)) if "ray" in args.launchers else None
        measured = {name: run_launcher(spec, Path(tmp) / name, name, args.workers) for name in args.launchers}
        if ray_start is not None:
            import ray

            ray.shutdown()
    bare = statistics.median(imports)
    if ray_start is not None:
        print(f"local Ray instance started in {ray_start:.2f} s (once per cluster, not per grid)")
    print(f"4 cells of {args.steps} steps, workers {args.workers}, accelerator {args.accelerator}, data {root}\n")
    for name, m in measured.items():
        print_table(name, m)
    print(f'bare `python -c "import torch, lightning"`: median {bare:.2f} s ({", ".join(f"{t:.2f}" for t in imports)})')
    for name, m in measured.items():
        fixed = statistics.mean(r["fixed_s"] for r in m["cells"].values())
        verdict = "meets" if fixed <= bare / 2 else "misses"
        print(f"{name}: fixed cost per cell {fixed:.2f} s = {fixed / bare:.2f} × import ({verdict} the ≤ 0.5 × goal)")
    if args.json:
        Path(args.json).write_text(json.dumps({"import_s": imports, **measured}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
