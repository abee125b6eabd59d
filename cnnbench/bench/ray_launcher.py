"""``cnnbench bench GRID --launcher ray``: a grid's cells on a Ray cluster, results in the driver's folder.

Design (each point tested in ``tests/bench/test_ray_launcher.py``):

* **Actors, not one task per cell.** Each Ray actor (:class:`~cnnbench.bench.ray_worker.CellWorker`) starts one fork
  server (:mod:`cnnbench.bench.forkserver`, the same code the ``fork`` launcher uses), which
  imports torch and Lightning and reads the grid's data once; every cell the actor is given
  runs in a process forked from it. A cell that raises, segfaults or runs past ``--timeout``
  ends only its own process and comes back ``failed`` with its error lines; the actor and
  its other cells go on. The actor count is what the cluster holds (``--workers`` caps it).
* **Resources.** An actor asks Ray for one cell's share (:mod:`cnnbench.bench.resources`:
  ``cpus_per_cell``, fractional ``gpus_per_cell`` from the grid's ``resources:`` block or
  the CLI). Ray sets the actor's ``CUDA_VISIBLE_DEVICES``, its fork server and cells inherit
  it, so four actors of 0.25 GPU share one GPU. A DDP cell (``devices: N``) gets an actor
  holding N whole GPUs on one node, which runs it as ``python -m cnnbench.bench.cell`` (Lightning
  starts the ranks there, as with the other launchers). DDP cells run after the single-device
  ones, so the two kinds never wait on each other's reservations.
* **No shared filesystem.** A cell writes into a scratch folder on its own node (its
  checkpoints stay there); the actor returns the result JSON, the log and the run folder's
  small files (``metrics.csv``, ``hparams.yaml``) and the driver writes them into ``DIR``,
  each atomically, the result last: a result in ``DIR`` means its files are complete.
* **Retries.** If the actor's process dies (killed, out of memory, node lost), Ray reports
  it to the driver, which starts a fresh actor and runs the cell again, up to ``retries``
  times, then records it ``failed`` with the reason. Only the driver writes results, once
  per cell, so a cell is never written twice or half.
* **Stopping.** Ctrl-C or SIGTERM of the driver kills its actors (their fork servers and
  cells die with them: ``PR_SET_PDEATHSIG``); a SIGKILLed driver's actors are killed by Ray
  when it sees the driver's job end. Finished cells are in ``DIR``; a rerun skips them.

Example (not run as a doctest: it needs Ray and a cluster, and trains every cell):
    >>> from cnnbench.bench.runner import run_grid
    >>> run_grid(spec, "results/smoke", launcher="ray", ray=RayOptions(address="auto"))  # doctest: +SKIP
"""

from __future__ import annotations

import collections
import contextlib
import math
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cnnbench.bench.launch import GridOutcome, claim, complete_result
from cnnbench.bench.ray_worker import CellWorker
from cnnbench.bench.resources import cell_demand
from cnnbench.bench.results import RESULT_SUFFIX, write_json_atomic, write_text_atomic

if TYPE_CHECKING:
    from cnnbench.bench.grid import Cell, GridSpec
    from cnnbench.bench.progress import Progress

INSTALL_HINT = '--launcher ray needs Ray, which is not installed: pip install "cnnbench[ray]"'


class RayMissingError(ValueError):
    """``--launcher ray`` without Ray installed (a one-line CLI error)."""


@dataclass
class RayOptions:
    """How the ``ray`` launcher connects and sizes cells.

    Args:
        address: ``None`` starts a local Ray instance (a laptop); ``auto`` or ``HOST:PORT``
            joins a running cluster.
        retries: Times a cell whose worker process died is run again before it is ``failed``.
        cpus_per_cell, gpus_per_cell: Override the grid's ``resources:`` block. Defaults:
            1 CPU; 1 GPU if the cluster has GPUs, else none.
        scratch: Folder on every node under which cells write (default: ``$CNNBENCH_RAY_SCRATCH``
            as the node's worker sees it, else the node's temp folder).
    """

    address: str | None = None
    retries: int = 2
    cpus_per_cell: float | None = None
    gpus_per_cell: float | None = None
    scratch: str | None = None


def import_ray() -> Any:
    """The ``ray`` module, or a one-line error saying how to install it."""
    try:
        import ray
    except ImportError:
        raise RayMissingError(INSTALL_HINT) from None
    return ray


@dataclass
class _Job:
    cell: Cell
    previous: dict[str, Any] | None
    lock: Path
    tries: int = 0  #: times it was handed to an actor
    t_launch: float = 0.0


@dataclass
class _Context:
    ray: Any
    spec: GridSpec
    out: Path
    options: RayOptions
    outcome: GridOutcome
    progress: Progress
    wandb: bool
    keep_checkpoints: bool
    timeout: float | None


def run_on_ray(
    spec: GridSpec,
    out: Path,
    todo: list[tuple[Cell, dict[str, Any] | None]],
    outcome: GridOutcome,
    progress: Progress,
    options: RayOptions,
    workers: int,
    wandb: bool,
    keep_checkpoints: bool,
    timeout: float | None,
    retry_failed: bool,
) -> None:
    """Run ``todo`` (feasible cells without a finished result) on Ray; called by ``run_grid``."""
    ray = import_ray()
    if not todo:
        return  # everything is finished: no need to reach the cluster
    started_here = not ray.is_initialized()
    # ray.init installs its own SIGTERM handler (sys.exit) in this process and ray.shutdown leaves it:
    # keep the caller's handlers and put them back afterwards (a library caller, a test process)
    callers_handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    if started_here:
        _connect(ray, options.address)
    ctx = _Context(ray, spec, out, options, outcome, progress, wandb, keep_checkpoints, timeout)
    jobs: list[_Job] = []
    previous_handler = _raise_on_sigterm()
    try:
        for cell, previous in todo:
            lock = claim(out, cell, previous, retry_failed, outcome, progress)
            if lock is not None:
                jobs.append(_Job(cell, previous, lock))
        for devices in sorted({job.cell.devices for job in jobs}):  # single-device cells first
            _run_group(ctx, [j for j in jobs if j.cell.devices == devices], devices, workers)
    except BaseException:
        if _TERMINATED.is_set():  # Ray turns an exception raised inside its calls into SystemExit(1)
            raise SystemExit(128 + signal.SIGTERM) from None
        raise
    finally:
        for job in jobs:
            job.lock.unlink(missing_ok=True)
        if previous_handler is not None:
            signal.signal(signal.SIGTERM, previous_handler)
        if started_here:
            ray.shutdown()
        if threading.current_thread() is threading.main_thread():
            for sig, handler in callers_handlers.items():
                signal.signal(sig, handler)


_TERMINATED = threading.Event()


def _connect(ray: Any, address: str | None) -> None:
    """Join the cluster at ``address`` (or start a local instance); a failure is one line."""
    import logging

    try:
        ray.init(address=address, include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)
    except (ConnectionError, RuntimeError) as err:
        raise ValueError(f"--ray-address {address}: cannot join the Ray cluster: {_first_line(err)}") from None


def _raise_on_sigterm() -> Any:
    """SIGTERM ends the driver as Ctrl-C does: through ``finally``, which kills the actors (exit 143)."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def stop(signum: int, frame: Any) -> None:
        _TERMINATED.set()
        raise SystemExit(128 + signum)

    return signal.signal(signal.SIGTERM, stop)


def _per_cell(ctx: _Context, devices: int) -> tuple[dict[str, float], int]:
    """The Ray resources of one cell and its CPU threads per process."""
    resources = ctx.spec.resources
    cpus = ctx.options.cpus_per_cell or resources.get("cpus_per_cell") or 1
    gpus = ctx.options.gpus_per_cell
    if gpus is None:
        gpus = resources.get("gpus_per_cell")
    if gpus is None:
        gpus = 1.0 if ctx.ray.cluster_resources().get("GPU", 0) > 0 else 0.0
    return cell_demand(devices, cpus, gpus), max(1, int(cpus))


def _actor_count(ctx: _Context, demand: dict[str, float], cells: int, workers: int) -> int:
    """As many actors as the cluster holds at once (at most ``workers`` if > 0, and ``cells``).

    A demand no single node can meet would wait forever in Ray's queue: fail now instead.
    """
    nodes = [n.get("Resources", {}) for n in ctx.ray.nodes() if n.get("Alive")]
    for key, name in (("num_cpus", "CPU"), ("num_gpus", "GPU")):
        largest = max((n.get(name, 0) for n in nodes), default=0)
        if demand[key] > largest:
            raise ValueError(
                f"a cell asks for {demand[key]:g} {name}s but the largest Ray node has {largest:g}; "
                "lower cpus_per_cell / gpus_per_cell (grid resources: or --cpus-per-cell / --gpus-per-cell)"
            )
    total = ctx.ray.cluster_resources()
    fits = [
        math.floor(total.get(name, 0) / demand[key] + 1e-9)
        for key, name in (("num_cpus", "CPU"), ("num_gpus", "GPU"))
        if demand[key] > 0
    ]
    count = min([cells, *fits, *([workers] if workers > 0 else [])])
    return max(1, count)


class _Pool:
    """The live actors of one group, each idle, starting, or running one job."""

    def __init__(self, ctx: _Context, demand: dict[str, float], fork: bool) -> None:
        self.ctx, self.demand, self.fork = ctx, demand, fork
        remote = ctx.ray.remote(CellWorker)
        self.factory = remote.options(**demand, max_restarts=0, max_concurrency=1)
        self.refs: dict[Any, tuple[Any, str, _Job | None]] = {}  # object ref → (actor, "ready"/"run", job)
        self.idle: list[Any] = []
        self.actors: list[Any] = []
        self.created: dict[int, float] = {}  # id(actor) → monotonic time of its creation
        self.failed_starts = 0  # actors that died before they were ready

    def add(self) -> None:
        ctx = self.ctx
        preload = [ctx.spec.data] if self.fork else None
        actor = self.factory.remote(ctx.options.scratch, preload, ctx.wandb, ctx.keep_checkpoints)
        self.actors.append(actor)
        self.created[id(actor)] = time.monotonic()
        self.refs[actor.ready.remote()] = (actor, "ready", None)

    def submit(self, actor: Any, job: _Job, run: dict[str, Any]) -> None:
        self.refs[actor.run.remote(run, self.ctx.timeout)] = (actor, "run", job)

    def retire(self, actor: Any, graceful: bool = False) -> None:
        """Kill the actor (its fork server and cells die with it); ``graceful``: let it clean up first."""
        if graceful:
            with contextlib.suppress(Exception):
                self.ctx.ray.get(actor.close.remote(), timeout=30)
        with contextlib.suppress(Exception):
            self.ctx.ray.kill(actor, no_restart=True)
        if actor in self.actors:
            self.actors.remove(actor)

    def close(self) -> None:
        for actor in list(self.actors):
            self.retire(actor)


def _run_group(ctx: _Context, jobs: list[_Job], devices: int, workers: int) -> None:
    """Run the jobs of one device count on a pool of actors until each has a result."""
    if not jobs:
        return
    demand, threads = _per_cell(ctx, devices)
    count = _actor_count(ctx, demand, len(jobs), workers)
    ctx.progress.workers = max(ctx.progress.workers, count)
    ctx.progress.note(
        f"{ctx.spec.name}: {len(jobs)} cells with {devices} device(s) on Ray, {count} at once, each "
        f"{demand['num_cpus']:g} CPU / {demand['num_gpus']:g} GPU, {threads} CPU threads"
    )
    queue = collections.deque(jobs)
    pool = _Pool(ctx, demand, fork=devices == 1)
    try:
        for _ in range(count):
            pool.add()
        while queue or any(kind == "run" for _, kind, _ in pool.refs.values()):
            if not pool.refs and not pool.idle:  # every actor is gone and none could replace it
                for left in queue:
                    _write(ctx, left, _lost(left, f"no Ray worker left to run it ({pool.failed_starts} failed starts)"))
                break
            while queue and pool.idle:
                nxt = queue.popleft()
                nxt.t_launch, nxt.tries = time.time(), nxt.tries + 1
                ctx.progress.started(nxt.cell.run_id)
                pool.submit(pool.idle.pop(), nxt, _run_request(ctx, nxt.cell, threads, nxt.t_launch))
            done, _ = ctx.ray.wait(list(pool.refs), num_returns=1, timeout=1.0)
            for ref in done:
                lost = _settle(ctx, pool, queue, ref)
                if lost and queue and len(pool.actors) < count and pool.failed_starts <= ctx.options.retries + count:
                    pool.add()  # a fresh actor replaces the dead one
            if not queue:
                for actor in pool.idle:
                    pool.retire(actor, graceful=True)
                pool.idle.clear()
    finally:
        pool.close()  # Ctrl-C / SIGTERM / an error: no actor (and so no cell) keeps training


def _settle(ctx: _Context, pool: _Pool, queue: collections.deque[_Job], ref: Any) -> bool:
    """Take one finished call (an actor ready, or a cell's payload); True if its actor is lost."""
    actor, kind, job = pool.refs.pop(ref)
    try:
        value = ctx.ray.get(ref)
    except ctx.ray.exceptions.RayTaskError as err:  # our own code raised in the actor: a bug, no retry
        pool.retire(actor)
        pool.failed_starts += kind == "ready"
        if job is not None:
            _write(ctx, job, _lost(job, f"Ray task failed: {_first_line(err)}"))
        return True
    except ctx.ray.exceptions.RayError as err:  # the actor's process died (killed, OOM, node lost)
        pool.retire(actor)
        pool.failed_starts += kind == "ready"
        if job is not None:
            _retry_or_fail(ctx, queue, job, err)
        return True
    if kind == "run" and job is not None:
        _write(ctx, job, value)
    elif ctx.outcome.server_ready_s is None:  # actor created → its fork server ready
        ctx.outcome.server_ready_s = time.monotonic() - pool.created[id(actor)]
    if queue:
        pool.idle.append(actor)
    else:
        pool.retire(actor, graceful=True)  # no more work for it: free its share of the cluster now
    return False


def _run_request(ctx: _Context, cell: Cell, threads: int, t_launch: float) -> dict[str, Any]:
    """What a cell's process needs (``out`` is set by the actor: its own node's scratch folder)."""
    return {
        "run_id": cell.run_id,
        "cell": cell.to_dict(),
        "grid": ctx.spec.to_dict(),
        "wandb": ctx.wandb,
        "keep_checkpoints": ctx.keep_checkpoints,
        "threads": threads,
        "launcher": "ray",
        "t_launch": t_launch,
    }


def _first_line(err: BaseException) -> str:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return f"{type(err).__name__}: {lines[0] if lines else ''}"[:300]


def _retry_or_fail(ctx: _Context, queue: collections.deque[_Job], job: _Job, err: BaseException) -> None:
    reason = _first_line(err)
    if job.tries <= ctx.options.retries:
        ctx.progress.note(f"{job.cell.run_id}: Ray worker died ({reason}); retry {job.tries}/{ctx.options.retries}")
        ctx.progress.running.pop(job.cell.run_id, None)
        queue.appendleft(job)
        return
    _write(ctx, job, _lost(job, f"Ray worker died in each of {job.tries} attempt(s); last: {reason}"))


def _lost(job: _Job, error: str) -> dict[str, Any]:
    """The payload of a cell that left nothing behind."""
    return {"code": error, "result": None, "log": error + "\n", "files": {}, "lost": error}


def _write(ctx: _Context, job: _Job, payload: dict[str, Any]) -> None:
    """Write the cell's log, run files and (last) result into the driver's folder, each atomically."""
    cell, out = job.cell, ctx.out
    write_text_atomic(out / "logs" / f"{cell.run_id}.log", payload["log"])
    for relative, text in payload["files"].items():
        path = (out / relative).resolve()
        if out.resolve() in path.parents:  # only into DIR, whatever a node sends
            write_text_atomic(path, text)
    launch = {"launcher": "ray", "t_launch": job.t_launch or None, "t_exit": time.time(), "attempts": job.tries}
    launch.update({k: payload[k] for k in ("node", "node_out") if k in payload})
    result = complete_result(cell, payload["result"], payload["log"], payload["code"], launch)
    if "lost" in payload:
        result["error"] = payload["lost"]
    result["attempts"] = job.tries
    write_json_atomic(out / "results" / f"{cell.run_id}{RESULT_SUFFIX}", result)
    job.lock.unlink(missing_ok=True)
    ctx.outcome.statuses[cell.run_id] = str(result["status"])
    ctx.outcome.ran.append(cell.run_id)
    ctx.progress.finished(cell.run_id, str(result["status"]), result)
