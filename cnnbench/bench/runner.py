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

Example:
    >>> from cnnbench.bench.grid import GridSpec, find_grid
    >>> spec = GridSpec.load(find_grid("smoke"))  # doctest: +SKIP
    >>> summary = run_grid(spec, "results/smoke")  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import queue
import re
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cnnbench.bench.forkclient import ForkServer
from cnnbench.bench.grid import Cell, GridSpec, expand, shard
from cnnbench.bench.progress import Progress
from cnnbench.bench.results import RESULT_SUFFIX, load_results, read_result, write_json_atomic

if TYPE_CHECKING:
    from cnnbench.bench.ray_launcher import RayOptions

__all__ = ["GridOutcome", "cpu_share", "load_results", "read_result", "run_grid"]  # the results' readers: results.py

DONE = ("ok", "diverged", "infeasible")
LAUNCHERS = ("fork", "subprocess", "ray")
_ERROR_LINE = re.compile(r"^(?:\[rank\d+\]: )?(?:\w*(?:Error|Exception)\b.*|Fatal Python error: .*)$", re.MULTILINE)


@dataclass
class GridOutcome:
    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    statuses: dict[str, str] = field(default_factory=dict)
    #: seconds from starting the fork server to its first possible fork (None: not used)
    server_ready_s: float | None = None

    @property
    def failed(self) -> list[str]:
        return [k for k, v in self.statuses.items() if v == "failed"]


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


def _settled(result: dict[str, Any] | None, retry_failed: bool) -> bool:
    """A result that needs no new run."""
    return result is not None and (result["status"] in DONE or (result["status"] == "failed" and not retry_failed))


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
        launcher: ``fork`` (cells forked from one server that imported and read the data
            once) or ``subprocess`` (a fresh Python per cell). Multi-device cells always
            run as subprocesses. ``ray``: every cell on a Ray cluster (see
            :mod:`cnnbench.bench.ray_launcher`; ``workers`` then caps the cells at once,
            0 = as many as the cluster holds).
        ray: Options of the ``ray`` launcher (address, retries, resources per cell).
    """
    if launcher not in LAUNCHERS:
        raise ValueError(f"unknown launcher {launcher!r}; valid: {', '.join(LAUNCHERS)}")
    if launcher == "ray":
        from cnnbench.bench.ray_launcher import import_ray

        import_ray()  # fails here, in one line, when Ray is not installed
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
    pending: list[tuple[Cell, dict[str, Any] | None]] = []
    for cell in cells:
        previous = read_result(out / "results" / f"{cell.run_id}{RESULT_SUFFIX}")
        if previous is not None and _settled(previous, retry_failed):
            outcome.skipped.append(cell.run_id)
            outcome.statuses[cell.run_id] = previous["status"]
            continue
        pending.append((cell, previous))
    server = None
    if launcher == "fork" and any(c.devices == 1 for c, _ in pending):
        # started first: it imports torch and reads the data while feasibility is checked here
        server = ForkServer(out / "logs" / "forkserver.log", preload=[spec.data], wandb=wandb)
        server.start()
    progress = Progress(total=len(pending), workers=workers, stream=log)
    threads = cpu_share(workers)
    if pending and launcher != "ray":  # the Ray launcher says how it sized the cells itself
        progress.note(
            f"{spec.name}: {len(cells)} cells, {len(outcome.skipped)} already done, {len(pending)} to run "
            f"({max(workers, 1)} at once, {threads} CPU threads each, launcher {launcher})"
        )
    try:
        todo: list[tuple[Cell, dict[str, Any] | None]] = []
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
        slots: queue.Queue[int] = queue.Queue()  # GPU slices: a slot is held by one running cell
        for slot in range(max(workers, 1)):
            slots.put(slot)
        launch_args = (spec, out, wandb, keep_checkpoints, timeout, server, progress)

        def launch(item: tuple[Cell, dict[str, Any] | None]) -> None:
            cell, previous = item
            lock = claim(out, cell, previous, retry_failed, outcome, progress)
            if lock is None:
                return
            try:
                slot = slots.get()
                try:
                    progress.started(cell.run_id)
                    result = _launch_cell(cell, previous, slot, cpu_share(workers, cell.devices), *launch_args)
                finally:
                    slots.put(slot)
                outcome.statuses[cell.run_id] = str(result["status"])
                outcome.ran.append(cell.run_id)
                progress.finished(cell.run_id, str(result["status"]), result)
            finally:
                lock.unlink(missing_ok=True)

        if launcher == "ray":
            from cnnbench.bench.ray_launcher import RayOptions, run_on_ray

            run_on_ray(spec, out, todo, outcome, progress, ray or RayOptions(), workers=workers, wandb=wandb, keep_checkpoints=keep_checkpoints,
                       timeout=timeout, retry_failed=retry_failed)  # fmt: skip
        else:
            with ThreadPoolExecutor(max_workers=max(workers, 1)) as pool:
                list(pool.map(launch, todo))
    finally:
        if server is not None:
            server.close()
            outcome.server_ready_s = server.ready_s
        progress.close()
    return outcome


def claim(
    out: Path, cell: Cell, previous: dict[str, Any] | None, retry_failed: bool, outcome: GridOutcome, progress: Progress
) -> Path | None:
    """Take the cell's lock file, unless another runner holds it or finished the cell meanwhile.

    Returns the lock (the caller removes it when the cell's result is written), or None
    (the cell is recorded as skipped).
    """
    lock = out / "locks" / f"{cell.run_id}.lock"
    if not acquire_lock(lock):
        outcome.skipped.append(cell.run_id)
        progress.finished(cell.run_id, "skipped", note="(another runner is running it)")
        return None
    current = read_result(out / "results" / f"{cell.run_id}{RESULT_SUFFIX}")
    if current != previous or _settled(current, retry_failed):
        # another runner finished it between our first look and taking the lock
        lock.unlink(missing_ok=True)
        outcome.skipped.append(cell.run_id)
        if current is not None:
            outcome.statuses[cell.run_id] = current["status"]
        progress.finished(cell.run_id, "skipped", note="(just finished by another runner)")
        return None
    return lock


def _launch_cell(
    cell: Cell,
    previous: dict[str, Any] | None,
    slot: int,
    threads: int,
    spec: GridSpec,
    out: Path,
    wandb: bool,
    keep: bool,
    timeout: float | None,
    server: ForkServer | None,
    progress: Progress,
) -> dict[str, Any]:
    """Run one cell (forked, or as a subprocess) and complete its result file."""
    run: dict[str, Any] = {
        "run_id": cell.run_id, "cell": cell.to_dict(), "grid": spec.to_dict(), "out": str(out),
        "wandb": wandb, "keep_checkpoints": keep, "threads": threads,
    }  # fmt: skip
    gpus = _gpu_env(slot, cell.devices)
    log_path = out / "logs" / f"{cell.run_id}.log"
    code: int | str
    if server is not None and cell.devices == 1 and server.wait_ready():
        run.update(launcher="fork", t_launch=time.time())
        code = server.run(cell.run_id, run, log_path, env=gpus, timeout=timeout, data=spec.data)
    else:
        if server is not None and cell.devices == 1:
            progress.note("fork server did not start (see logs/forkserver.log): running this cell as a subprocess")
        run.update(launcher="subprocess", t_launch=time.time())
        code = _run_subprocess(run, out, log_path, gpus, threads, timeout)
    return _complete(cell, previous, out, log_path, code, {"launcher": run["launcher"], "t_launch": run["t_launch"]})


def _run_subprocess(
    run: dict[str, Any], out: Path, log_path: Path, gpus: dict[str, str], threads: int, timeout: float | None
) -> int | str:
    env = {**os.environ, **gpus, "OMP_NUM_THREADS": str(threads)}  # Lightning's DDP ranks read it too
    env.pop("CNNBENCH_RUN_VERSION", None)
    with tempfile.NamedTemporaryFile("w", suffix=".json", dir=out / "logs", delete=False) as fh:
        json.dump(run, fh)
    try:
        with log_path.open("w") as log:
            proc = subprocess.run(
                [sys.executable, "-m", "cnnbench.bench.cell", fh.name], stdout=log, stderr=subprocess.STDOUT,
                env=env, timeout=timeout, preexec_fn=_die_with_parent,
            )  # fmt: skip
        return proc.returncode
    except subprocess.TimeoutExpired:
        return f"timeout after {timeout:g}s"
    finally:
        os.unlink(fh.name)


def _complete(
    cell: Cell, previous: dict[str, Any] | None, out: Path, log_path: Path, code: int | str, launch: dict[str, Any]
) -> dict[str, Any]:
    """The cell's final result: its own, with the exit time and (if failed) its log's error lines."""
    t_exit = time.time()
    result_path = out / "results" / f"{cell.run_id}{RESULT_SUFFIX}"
    result = read_result(result_path)
    if result is not None and previous is not None and result == previous:
        result = None  # the result of an earlier attempt: this one wrote none
    text = log_path.read_text(errors="replace") if log_path.exists() else ""
    result = complete_result(cell, result, text, code, {**launch, "t_exit": t_exit})
    write_json_atomic(result_path, result)
    return result


def complete_result(
    cell: Cell, result: dict[str, Any] | None, log_text: str, code: int | str, launch: dict[str, Any]
) -> dict[str, Any]:
    """A cell's final result from what its process left: its own result (None if it wrote
    none), its log, its exit code; ``launch`` (launcher, ``t_launch``, ``t_exit``, ...)
    fills what the result does not say itself. A failed cell gets its log's error lines."""
    if result is None or (result["status"] not in DONE and result["status"] != "failed"):
        error = f"run process ended ({_describe(code)}) without a result"
        result = {"run_id": cell.run_id, **cell.to_dict(), "status": "failed", "error": error}
    if result["status"] == "failed":
        # every rank's errors: the rank that raised may not be the one that wrote the result
        errors = list(dict.fromkeys(m.group(0).strip() for m in _ERROR_LINE.finditer(log_text)))[:20]
        result = {**result, "log_tail": log_text[-6000:], "error_lines": errors}
    return {**launch, **result, "t_exit": launch.get("t_exit", time.time())}


def _describe(code: int | str) -> str:
    if isinstance(code, int) and code < 0:
        try:
            return signal.Signals(-code).name
        except ValueError:
            return f"signal {-code}"
    return f"exit code {code}" if isinstance(code, int) else code


def _gpu_env(slot: int, devices: int) -> dict[str, str]:
    """``CUDA_VISIBLE_DEVICES`` giving parallel slot ``slot`` its own slice of the visible GPUs.

    Counted through NVML (``torch.cuda.device_count``), which does not initialise CUDA in
    the runner; with fewer GPUs than slots, cells share them.
    """
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    try:
        import torch

        ids = visible.split(",") if visible else [str(i) for i in range(torch.cuda.device_count())]
    except ImportError:
        return {}
    if not ids or devices < 1:
        return {}
    start = (slot * devices) % len(ids)
    return {"CUDA_VISIBLE_DEVICES": ",".join(ids[(start + i) % len(ids)] for i in range(min(devices, len(ids))))}
