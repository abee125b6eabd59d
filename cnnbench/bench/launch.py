"""Launching one cell and completing its result: the cell's lock, its process, its final result file.

A cell's lock file (holding the runner's pid) keeps two runners sharing one folder from running
the same cell; a lock whose runner died is reclaimed. A cell runs forked from the fork server or
as ``python -m cnnbench.bench.cell RUN.json``; whatever its process leaves (its own result, a
log, an exit code) becomes one complete result file, written atomically.

Example:
    >>> from cnnbench.bench.axes import Cell
    >>> cell = Cell("lenet5", {}, "lenet5", "max", "valid", "zeros", "32-true", 1, 0)
    >>> complete_result(cell, None, "ValueError: boom", -9, {"t_exit": 0.0})["error"]
    'run process ended (SIGKILL) without a result'
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
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cnnbench.bench.axes import Cell
from cnnbench.bench.progress import Progress
from cnnbench.bench.results import RESULT_SUFFIX, read_result, write_json_atomic

if TYPE_CHECKING:
    from cnnbench.bench.forkclient import ForkServer
    from cnnbench.bench.grid import GridSpec

DONE = ("ok", "diverged", "infeasible")
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


def settled(result: dict[str, Any] | None, retry_failed: bool) -> bool:
    """A result that needs no new run."""
    return result is not None and (result["status"] in DONE or (result["status"] == "failed" and not retry_failed))


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
    if current != previous or settled(current, retry_failed):
        # another runner finished it between our first look and taking the lock
        lock.unlink(missing_ok=True)
        outcome.skipped.append(cell.run_id)
        if current is not None:
            outcome.statuses[cell.run_id] = current["status"]
        progress.finished(cell.run_id, "skipped", note="(just finished by another runner)")
        return None
    return lock


def launch_cell(
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
        "run_id": cell.run_id,
        "cell": cell.to_dict(),
        "grid": spec.to_dict(),
        "out": str(out),
        "wandb": wandb,
        "keep_checkpoints": keep,
        "threads": threads,
    }
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
        code = run_subprocess(run, out, log_path, gpus, threads, timeout)
    return _complete(cell, previous, out, log_path, code, {"launcher": run["launcher"], "t_launch": run["t_launch"]})


def run_subprocess(
    run: dict[str, Any], out: Path, log_path: Path, gpus: dict[str, str], threads: int, timeout: float | None
) -> int | str:
    env = {**os.environ, **gpus, "OMP_NUM_THREADS": str(threads)}  # Lightning's DDP ranks read it too
    env.pop("CNNBENCH_RUN_VERSION", None)
    with tempfile.NamedTemporaryFile("w", suffix=".json", dir=out / "logs", delete=False) as fh:
        json.dump(run, fh)
    try:
        with log_path.open("w") as log:
            proc = subprocess.run(
                [sys.executable, "-m", "cnnbench.bench.cell", fh.name],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                timeout=timeout,
                preexec_fn=_die_with_parent,
            )
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
