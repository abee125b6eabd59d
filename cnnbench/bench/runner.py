"""Run a grid: skip what is finished, run the rest in child processes, never lose a result.

Guarantees (each tested in ``tests/bench`` and ``tests/reliability``):

* A run's result file is written atomically by the run itself, so a runner killed at any
  moment (SIGKILL included) leaves only complete results; half-written temporary files are
  never read as results.
* Rerunning skips finished runs (``ok``, ``diverged``, ``infeasible``); ``failed`` runs
  are retried only with ``retry_failed``. A per-run lock file keeps two runners sharing
  one folder (shards, or a double start) from running the same cell twice.
* A failing run never stops the grid; the exit code reports it.

Example:
    >>> from cnnbench.bench.grid import GridSpec
    >>> spec = GridSpec.load("benchmarks/grids/smoke.yaml")  # doctest: +SKIP
    >>> summary = run_grid(spec, "results/smoke")  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnnbench.bench.cell import RESULT_SUFFIX, write_json_atomic
from cnnbench.bench.grid import Cell, GridSpec, expand, shard

DONE = ("ok", "diverged", "infeasible")
_ERROR_LINE = re.compile(r"^(?:\[rank\d+\]: )?\w*(?:Error|Exception)\b.*$", re.MULTILINE)


@dataclass
class GridOutcome:
    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    statuses: dict[str, str] = field(default_factory=dict)

    @property
    def failed(self) -> list[str]:
        return [k for k, v in self.statuses.items() if v == "failed"]


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


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def acquire_lock(path: Path) -> bool:
    """Create ``path`` exclusively (holding our pid); reclaim it if its owner is dead."""
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            try:
                owner = int(path.read_text() or "0")
            except (OSError, ValueError):
                owner = 0
            if owner and _pid_alive(owner):
                return False
            path.unlink(missing_ok=True)  # stale: its runner was killed
            continue
        with os.fdopen(fd, "w") as fh:
            fh.write(str(os.getpid()))
        return True
    return False


def _die_with_parent() -> None:
    # children get SIGKILL when the runner dies, so a killed runner leaves no orphans
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def check_feasible(spec: GridSpec, cell: Cell) -> str | None:
    """The geometry error of an impossible cell, found without touching data."""
    from cnnbench.bench.cell import build
    from cnnbench.models.layers import GeometryError

    grid = spec.to_dict()
    grid["data"] = {**grid["data"], "download": False}
    try:
        build({"cell": cell.to_dict(), "grid": grid})
    except GeometryError as err:
        return str(err)
    except Exception:  # any other problem is the run's to report (as failed), not the runner's
        return None
    return None


def run_grid(
    spec: GridSpec,
    out: str | Path,
    workers: int = 1,
    shard_index: int = 0,
    shard_count: int = 1,
    retry_failed: bool = False,
    wandb: bool = True,
    keep_checkpoints: bool = False,
    timeout: float | None = None,
    only: dict[str, str] | None = None,
    log: Any = sys.stderr,
) -> GridOutcome:
    """Run the cells of this shard that have no finished result yet.

    Args:
        spec: The validated grid.
        out: Output folder (``results/``, ``runs/``, ``logs/`` and the report go there).
        workers: Runs at once, each in its own process.
        shard_index, shard_count: Run only the ``shard_index``-th of ``shard_count`` slices.
        retry_failed: Run again the runs whose last attempt failed.
        wandb: Log every run to W&B (offline without credentials).
        keep_checkpoints: Keep each run's checkpoints (deleted after success otherwise).
        timeout: Seconds before a run is killed and recorded as failed.
        only: Run only the cells whose coordinates match (``{"pool": "max"}``).
    """
    out = Path(out)
    for sub in ("results", "logs", "locks"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    (out / "grid.json").write_text(json.dumps(spec.to_dict(), indent=1))
    cells = shard(expand(spec), shard_index, shard_count)
    if only:
        cells = [
            c
            for c in cells
            if all(str(c.to_dict().get(k if k != "model" else "model_label")) == str(v) for k, v in only.items())
        ]
    outcome = GridOutcome()
    todo: list[Cell] = []
    for cell in cells:
        previous = read_result(out / "results" / f"{cell.run_id}{RESULT_SUFFIX}")
        if previous and (previous["status"] in DONE or (previous["status"] == "failed" and not retry_failed)):
            outcome.skipped.append(cell.run_id)
            outcome.statuses[cell.run_id] = previous["status"]
            continue
        reason = check_feasible(spec, cell)
        if reason is not None:
            write_json_atomic(
                out / "results" / f"{cell.run_id}{RESULT_SUFFIX}",
                {"run_id": cell.run_id, **cell.to_dict(), "status": "infeasible", "error": reason},
            )
            outcome.statuses[cell.run_id] = "infeasible"
            print(f"[infeasible] {cell.run_id}: {reason}", file=log)
            continue
        todo.append(cell)

    def launch(indexed: tuple[int, Cell]) -> None:
        slot, cell = indexed
        lock = out / "locks" / f"{cell.run_id}.lock"
        if not acquire_lock(lock):
            outcome.skipped.append(cell.run_id)
            return
        try:
            outcome.statuses[cell.run_id] = _launch_cell(
                spec, cell, out, slot % max(workers, 1), wandb, keep_checkpoints, timeout
            )
            outcome.ran.append(cell.run_id)
            print(f"[{outcome.statuses[cell.run_id]}] {cell.run_id}", file=log, flush=True)
        finally:
            lock.unlink(missing_ok=True)

    with ThreadPoolExecutor(max_workers=max(workers, 1)) as pool:
        list(pool.map(launch, enumerate(todo)))
    return outcome


def _launch_cell(
    spec: GridSpec, cell: Cell, out: Path, slot: int, wandb: bool, keep: bool, timeout: float | None
) -> str:
    run = {
        "run_id": cell.run_id,
        "cell": cell.to_dict(),
        "grid": spec.to_dict(),
        "out": str(out),
        "wandb": wandb,
        "keep_checkpoints": keep,
    }
    env = dict(os.environ)
    env.pop("CNNBENCH_RUN_VERSION", None)
    _share_gpus(env, slot, cell.devices)
    result_path = out / "results" / f"{cell.run_id}{RESULT_SUFFIX}"
    with tempfile.NamedTemporaryFile("w", suffix=".json", dir=out / "logs", delete=False) as fh:
        json.dump(run, fh)
    log_path = out / "logs" / f"{cell.run_id}.log"
    try:
        with log_path.open("w") as log:
            proc = subprocess.run(
                [sys.executable, "-m", "cnnbench.bench.cell", fh.name], stdout=log, stderr=subprocess.STDOUT,
                env=env, timeout=timeout, preexec_fn=_die_with_parent,
            )  # fmt: skip
        code: int | str = proc.returncode
    except subprocess.TimeoutExpired:
        code = f"timeout after {timeout}s"
    finally:
        os.unlink(fh.name)
    result = read_result(result_path)
    tail = log_path.read_text(errors="replace")[-6000:] if log_path.exists() else ""
    if result is None or (result["status"] not in DONE and result["status"] != "failed"):
        error = f"run process ended ({code}) without a result"
        result = {"run_id": cell.run_id, **cell.to_dict(), "status": "failed", "error": error, "log_tail": tail}
        write_json_atomic(result_path, result)
    elif result["status"] == "failed":
        # every rank's errors: the rank that raised may not be the one that wrote the result
        text = log_path.read_text(errors="replace") if log_path.exists() else ""
        errors = list(dict.fromkeys(m.group(0).strip() for m in _ERROR_LINE.finditer(text)))[:20]
        write_json_atomic(result_path, {**result, "log_tail": tail, "error_lines": errors})
    return str(result["status"])


def _share_gpus(env: dict[str, str], slot: int, devices: int) -> None:
    """Give each parallel worker its own slice of the visible GPUs."""
    visible = env.get("CUDA_VISIBLE_DEVICES")
    try:
        import torch

        ids = visible.split(",") if visible else [str(i) for i in range(torch.cuda.device_count())]
    except ImportError:
        return
    if not ids or devices < 1:
        return
    start = (slot * devices) % len(ids)
    env["CUDA_VISIBLE_DEVICES"] = ",".join(ids[(start + i) % len(ids)] for i in range(min(devices, len(ids))))
