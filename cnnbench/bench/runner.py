"""Run a grid: skip what is finished, run the rest in child processes, never lose a result.

Cells run in processes forked from one fork server (:mod:`cnnbench.bench.forkserver`),
which imports torch and Lightning and reads the data once per grid, so a cell spends its
time training; multi-device (DDP) cells, and every cell with ``launcher="subprocess"``,
run as ``python -m cnnbench.bench.cell RUN.json`` instead.

Guarantees (each tested in ``tests/bench`` and ``tests/reliability``):

* A run's result file is written atomically by the run itself, so a runner killed at any
  moment (SIGKILL included) leaves only complete results; half-written temporary files are
  never read as results. A killed runner leaves no process behind (``PR_SET_PDEATHSIG``).
* Rerunning skips finished runs (``ok``, ``diverged``, ``infeasible``); ``failed`` runs
  are retried only with ``retry_failed``. A per-run lock file keeps two runners sharing
  one folder (shards, or a double start) from running the same cell twice; the result is
  read again once the lock is held, so a cell another runner has just finished is skipped.
* A failing run (an exception, a segfault, a timeout) never stops the grid; its result
  says ``failed`` with its error lines, and the exit code reports it.
* With ``workers`` W on C cores each cell gets ``max(1, C // W)`` CPU threads.

Example (not run as a doctest: it trains every cell of the grid):
    >>> from cnnbench.bench.grid import GridSpec, find_grid
    >>> spec = GridSpec.load(find_grid("smoke"))  # doctest: +SKIP
    >>> summary = run_grid(spec, "results/smoke")  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import queue
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cnnbench.bench.forkclient import ForkServer
from cnnbench.bench.grid import Cell, GridSpec, expand, shard
from cnnbench.bench.launch import GridOutcome, claim, launch_cell, settled
from cnnbench.bench.progress import Progress
from cnnbench.bench.results import RESULT_SUFFIX, load_results, read_result, write_json_atomic, write_text_atomic

if TYPE_CHECKING:
    from cnnbench.bench.ray_launcher import RayOptions

__all__ = ["GridOutcome", "cpu_share", "load_results", "read_result", "run_grid"]  # the results' readers: results.py

LAUNCHERS = ("fork", "subprocess", "ray")


def cpu_share(workers: int, devices: int = 1) -> int:
    """CPU threads for each process of a cell when ``workers`` cells run at once.

    Example:
        >>> cpu_share(workers=64) >= 1
        True
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, cores // max(workers, 1) // max(devices, 1))


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
    launcher: str = "fork",
    ray: RayOptions | None = None,
) -> GridOutcome:
    """Run the cells of this shard that have no finished result yet.

    Args:
        spec: The validated grid.
        out: Output folder (``results/``, ``runs/``, ``logs/`` and the report go there).
        workers: Runs at once, each in its own process, each with ``cores // workers`` threads.
        shard_index, shard_count: Run only the ``shard_index``-th of ``shard_count`` slices.
        retry_failed: Run again the runs whose last attempt failed.
        wandb: Log every run to W&B (offline without credentials).
        keep_checkpoints: Keep each run's checkpoints (deleted after success otherwise).
        timeout: Seconds before a run is killed and recorded as failed.
        only: Run only the cells whose coordinates match (``{"pool": "max"}``).
        log: Where the progress line goes.
        launcher: ``fork`` (cells forked from one server that imported and read the data once) or
            ``subprocess`` (a fresh Python per cell); multi-device cells always run as subprocesses.
            ``ray``: every cell on a Ray cluster (:mod:`cnnbench.bench.ray_launcher`; ``workers``
            then caps the cells at once, 0 = as many as the cluster holds).
        ray: Options of the ``ray`` launcher (address, retries, resources per cell).
    """
    _check_launcher(launcher)
    out = _prepare(Path(out), spec)
    cells = [c for c in shard(expand(spec), shard_index, shard_count) if c.matches(only or {})]
    outcome = GridOutcome()
    pending = _unfinished(cells, out, retry_failed, outcome)
    # started first: it imports torch and reads the data while feasibility is checked here
    server = _fork_server(spec, out, wandb) if launcher == "fork" and any(c.devices == 1 for c, _ in pending) else None
    progress = Progress(total=len(pending), workers=workers, stream=log)
    if pending and launcher != "ray":  # the Ray launcher says how it sized the cells itself
        progress.note(
            f"{spec.name}: {len(cells)} cells, {len(outcome.skipped)} already done, {len(pending)} to run "
            f"({max(workers, 1)} at once, {cpu_share(workers)} CPU threads each, launcher {launcher})"
        )
    cells_run = _CellsRun(spec, out, workers, retry_failed, wandb, keep_checkpoints, timeout, server, progress, outcome)
    try:
        todo = _feasible(spec, out, pending, outcome, progress)
        if launcher == "ray":
            cells_run.on_ray(todo, ray)
        else:
            cells_run.here(todo)
    finally:
        if server is not None:
            server.close()
            outcome.server_ready_s = server.ready_s
        progress.close()
    return outcome


Pending = list[tuple[Cell, "dict[str, Any] | None"]]


def _check_launcher(launcher: str) -> None:
    if launcher not in LAUNCHERS:
        raise ValueError(f"unknown launcher {launcher!r}; valid: {', '.join(LAUNCHERS)}")
    if launcher == "ray":
        from cnnbench.bench.ray_launcher import import_ray

        import_ray()  # fails here, in one line, when Ray is not installed


def _fork_server(spec: GridSpec, out: Path, wandb: bool) -> ForkServer:
    server = ForkServer(out / "logs" / "forkserver.log", preload=[spec.data], wandb=wandb)
    server.start()
    return server


def _prepare(out: Path, spec: GridSpec) -> Path:
    """The output folder's sub-folders, and the grid spec saved beside the results (``grid.json``)."""
    for sub in ("results", "logs", "locks"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / "grid.json", json.dumps(spec.to_dict(), indent=1))
    return out


def _unfinished(cells: list[Cell], out: Path, retry_failed: bool, outcome: GridOutcome) -> Pending:
    """The cells without a settled result (with their previous result, if any); the others are skipped."""
    pending: Pending = []
    for cell in cells:
        previous = read_result(out / "results" / f"{cell.run_id}{RESULT_SUFFIX}")
        if previous is not None and settled(previous, retry_failed):
            outcome.skipped.append(cell.run_id)
            outcome.statuses[cell.run_id] = previous["status"]
            continue
        pending.append((cell, previous))
    return pending


def _feasible(spec: GridSpec, out: Path, pending: Pending, outcome: GridOutcome, progress: Progress) -> Pending:
    """The pending cells whose geometry works; each impossible one gets an ``infeasible`` result."""
    todo: Pending = []
    for cell, previous in pending:
        reason = check_feasible(spec, cell)
        if reason is None:
            todo.append((cell, previous))
            continue
        write_json_atomic(
            out / "results" / f"{cell.run_id}{RESULT_SUFFIX}",
            {"run_id": cell.run_id, **cell.to_dict(), "status": "infeasible", "error": reason},
        )
        outcome.statuses[cell.run_id] = "infeasible"
        progress.finished(cell.run_id, "infeasible", note=reason)
    return todo


@dataclass
class _CellsRun:
    """How the cells of one :func:`run_grid` call run: here, ``workers`` at once, each holding one
    GPU slot while it runs, or on a Ray cluster."""

    spec: GridSpec
    out: Path
    workers: int
    retry_failed: bool
    wandb: bool
    keep_checkpoints: bool
    timeout: float | None
    server: ForkServer | None
    progress: Progress
    outcome: GridOutcome
    slots: queue.Queue[int] = field(default_factory=queue.Queue)  # GPU slices: a slot is held by one running cell

    def __post_init__(self) -> None:
        for slot in range(max(self.workers, 1)):
            self.slots.put(slot)

    def here(self, todo: Pending) -> None:
        with ThreadPoolExecutor(max_workers=max(self.workers, 1)) as pool:
            list(pool.map(self.launch, todo))

    def on_ray(self, todo: Pending, ray: RayOptions | None) -> None:
        from cnnbench.bench.ray_launcher import RayOptions, run_on_ray

        run_on_ray(
            self.spec,
            self.out,
            todo,
            self.outcome,
            self.progress,
            ray or RayOptions(),
            workers=self.workers,
            wandb=self.wandb,
            keep_checkpoints=self.keep_checkpoints,
            timeout=self.timeout,
            retry_failed=self.retry_failed,
        )

    def launch(self, item: tuple[Cell, dict[str, Any] | None]) -> None:
        """Claim the cell, run it in a free slot, record its status; the lock is released in any case."""
        cell, previous = item
        lock = claim(self.out, cell, previous, self.retry_failed, self.outcome, self.progress)
        if lock is None:
            return
        try:
            slot = self.slots.get()
            try:
                self.progress.started(cell.run_id)
                args = (self.spec, self.out, self.wandb, self.keep_checkpoints, self.timeout, self.server)
                threads = cpu_share(self.workers, cell.devices)
                result = launch_cell(cell, previous, slot, threads, *args, self.progress)
            finally:
                self.slots.put(slot)
            self.outcome.statuses[cell.run_id] = str(result["status"])
            self.outcome.ran.append(cell.run_id)
            self.progress.finished(cell.run_id, str(result["status"]), result)
        finally:
            lock.unlink(missing_ok=True)
