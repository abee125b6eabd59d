"""One grid run, in its own process: fit, test, robustness, result file.

A cell runs in a process forked by the fork server (:mod:`cnnbench.bench.forkserver`,
which calls :func:`execute`), or, for multi-device cells and ``--launcher subprocess``,
as ``python -m cnnbench.bench.cell RUN.json`` (what Lightning re-executes on every rank
of a multi-device cell). The result is written atomically by rank 0 only: a run either
has a complete result file or none.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import resource
import subprocess
import sys
import time
import traceback
from functools import lru_cache
from pathlib import Path
from typing import Any

from cnnbench.bench.axes import AXES
from cnnbench.bench.results import RESULT_SUFFIX, write_json_atomic
from cnnbench.core.vocab import PADDING_MODES

__all__ = ["RESULT_SUFFIX", "build", "environment", "execute", "main", "run_cell", "write_json_atomic"]


@lru_cache(maxsize=1)
def git_commit() -> str:
    """The commit of the cnnbench checkout ("" outside git); cached, so a fork server asks once."""
    import cnnbench

    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, cwd=Path(cnnbench.__file__).parent
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


def environment() -> dict[str, Any]:
    """Package versions, git commit and machine, stored with every result."""
    import lightning
    import torch
    import torchvision

    import cnnbench

    commit = git_commit()
    return {
        "cnnbench": cnnbench.__version__,
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "lightning": lightning.__version__,
        "python": platform.python_version(),
        "git_commit": commit or None,
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def build(run: dict[str, Any]) -> tuple[Any, Any]:
    """The data module and model of a run (raises GeometryError for impossible cells)."""
    from cnnbench.data import create_data
    from cnnbench.data.link import model_link
    from cnnbench.models import create_model

    cell, data = run["cell"], dict(run["grid"]["data"])
    if "augment" in cell:  # the grid's augment axis; cells written before it keep the data block's
        data["augment"] = cell["augment"]
    dm = create_data(data.pop("name"), seed=cell["seed"], **data)
    knobs = {a.name: cell[a.name] for a in AXES if a.to_model}  # pool, padding, padding_mode
    if knobs["padding_mode"] == PADDING_MODES[0] and _lacks(cell["model"], "padding_mode"):
        del knobs["padding_mode"]  # a plugin without the argument pads with zeros, as torch's convolutions do
    model = create_model(cell["model"], **cell["model_args"], **knobs, **model_link(dm))
    return dm, model


def _lacks(model: str, argument: str) -> bool:
    from cnnbench.core.signature import accepted_kwargs
    from cnnbench.models import MODELS

    accepted = accepted_kwargs(MODELS.get(model))
    return accepted is not None and argument not in accepted


def set_threads(threads: int | None) -> int:
    """Give this process ``threads`` intra-op (and inter-op) CPU threads; returns the count in use.

    The runner gives each of its W parallel cells ``cores // W`` threads: with every cell
    using all the cores, parallel cells slow each other down unevenly.
    """
    import torch

    if threads:
        torch.set_num_threads(threads)
        with contextlib.suppress(RuntimeError):  # allowed once, before any inter-op work
            torch.set_num_interop_threads(threads)
    return torch.get_num_threads()


def run_cell(run: dict[str, Any]) -> dict[str, Any] | None:
    """Fit and evaluate one cell; returns the result on rank 0 (None on other ranks)."""
    import lightning as L

    from cnnbench.bench.datacache import attach
    from cnnbench.bench.timing import Timeline

    cell, grid, out = run["cell"], run["grid"], Path(run["out"])
    threads = set_threads(run.get("threads"))
    L.seed_everything(cell["seed"], workers=True, verbose=False)
    dm, model = build(run)
    shared = attach(dm, grid["data"])  # in a forked cell: the server's decoded data, not the files again
    result = _first_result(run, model, threads, shared)
    timeline = Timeline()
    trainer = _trainer(run, result["environment"], timeline)
    _fit(trainer, model, dm, result, timeline)
    if result["status"] == "running":
        _evaluate(trainer, model, dm, grid, result)
    result["t_eval_end"] = time.time()
    result["peak_memory_mb"] = _peak_memory_mb(trainer, cell["devices"])
    _finish_loggers(trainer, result)
    if not run.get("keep_checkpoints"):
        import shutil

        shutil.rmtree(out / "runs" / run["run_id"] / "version_0" / "checkpoints", ignore_errors=True)
    return result if trainer.is_global_zero else None


def _first_result(run: dict[str, Any], model: Any, threads: int, shared: Any) -> dict[str, Any]:
    """The result before training: coordinates, model size, environment, how the cell was launched."""
    from cnnbench.models import summarize

    rows = summarize(model)
    return {
        "run_id": run["run_id"],
        "grid": run["grid"]["name"],
        **run["cell"],
        "status": "running",
        "params": sum(r.params for r in rows),
        "macs": sum(r.macs for r in rows),
        "environment": environment(),
        "threads": threads,
        "launcher": run.get("launcher", "subprocess"),
        "t_launch": run.get("t_launch"),
        "data_shared": shared,
    }


def _trainer(run: dict[str, Any], env: dict[str, Any], timeline: Any) -> Any:
    """The cell's Trainer: the grid's ``trainer:`` block, the cell's precision and devices, one W&B run."""
    import lightning as L

    from cnnbench.training import WandbSettings, trainer_extras

    cell, grid = run["cell"], run["grid"]
    wandb = None
    if run.get("wandb", True):
        tags = [
            cell["model_label"],
            f"pool={cell['pool']}",
            f"padding={cell['padding']}",
            f"precision={cell['precision']}",
            f"seed={cell['seed']}",
        ]
        wandb = WandbSettings(
            project=run.get("wandb_project", "cnnbench"), group=grid["name"], name=run["run_id"], tags=tags
        )
    config = {"cell": cell, "grid": grid, "environment": env}
    extras = trainer_extras(
        str(Path(run["out"]) / "runs"), run["run_id"], 0, wandb=wandb, config=config, progress_bar=False
    )
    extras["callbacks"].append(timeline)
    trainer = L.Trainer(
        **{"max_epochs": 3, "enable_model_summary": False, "log_every_n_steps": 50, **grid["trainer"]},
        precision=cell["precision"],
        devices=cell["devices"],
        enable_progress_bar=False,
        **extras,
    )
    for logger in trainer.loggers:
        if hasattr(logger, "keep_open"):
            logger.keep_open = True  # one W&B run for the fit, the test and the summary; finished below
    return trainer


def _fit(trainer: Any, model: Any, dm: Any, result: dict[str, Any], timeline: Any) -> None:
    """Train; record the status (diverged or still running), the times, throughput and best val accuracy."""
    from cnnbench.models.base import DivergedError
    from cnnbench.training import Throughput

    started, cpu_started = time.perf_counter(), time.process_time()
    try:
        trainer.fit(model, dm)
    except DivergedError as err:
        result.update(status="diverged", error=str(err))
    result["train_time_s"] = time.perf_counter() - started
    # CPU seconds of this process: what a cell costs on an idle core, whatever else shares the machine
    result["train_cpu_s"] = time.process_time() - cpu_started
    result.update(t_first_step=timeline.t_first_step, t_train_end=time.time(), val_time_s=timeline.val_time_s)
    result["epochs"] = trainer.current_epoch
    throughput = next(c for c in trainer.callbacks if isinstance(c, Throughput))
    result["images_per_s"] = throughput.total_images / max(throughput.total_time, 1e-9)
    score = getattr(trainer.checkpoint_callback, "best_model_score", None)
    result["best_val_acc"] = float(score) if score is not None else None


def _evaluate(trainer: Any, model: Any, dm: Any, grid: dict[str, Any], result: dict[str, Any]) -> None:
    """Test the best checkpoint, then (rank 0) the robustness probes on the test images."""
    cpu_started = time.process_time()
    best = getattr(trainer.checkpoint_callback, "best_model_path", "")
    started = time.perf_counter()
    metrics = trainer.test(model, dm, ckpt_path="best" if best else None, verbose=False)[0]
    result.update(status="ok", test_acc=metrics.get("test/acc"), test_loss=metrics.get("test/loss"))
    result["test_time_s"], started = time.perf_counter() - started, time.perf_counter()
    if trainer.is_global_zero:
        result["robustness"] = _robustness(trainer.lightning_module, dm, grid["robustness"])
        # scalar metrics for results.csv columns (border penalty, consistency below/from the stride, ...)
        result["metrics"] = result["robustness"].pop("columns")
    result["robustness_time_s"] = time.perf_counter() - started
    result["eval_cpu_s"] = time.process_time() - cpu_started


def _robustness(module: Any, dm: Any, rob: dict[str, Any]) -> dict[str, Any]:
    from cnnbench.bench.robustness import evaluate_robustness
    from cnnbench.models.layers import total_stride

    images, labels = dm.splits["test"]
    limit = rob.get("max_images")
    strata = getattr(dm, "strata", {}).get("test")  # placement strata (mnist_border)
    return evaluate_robustness(
        module,
        images[:limit],
        labels[:limit],
        dm.normalize,
        shifts=rob["shifts"],
        fills=rob.get("fills") or [rob.get("fill", "zero")],
        copies=rob.get("copies", 4),
        seed=rob.get("seed", 0),
        edge=rob.get("edge", True),
        batch_size=rob.get("batch_size") or 4096,
        strata=None if strata is None else strata[:limit],
        stride=total_stride(module),
    )


def _peak_memory_mb(trainer: Any, devices: int) -> float:
    import torch

    if torch.cuda.is_available() and devices and trainer.strategy.root_device.type == "cuda":
        return float(torch.cuda.max_memory_allocated() / 2**20)
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _finish_loggers(trainer: Any, result: dict[str, Any]) -> None:
    """Put the result's scalars into the W&B run's summary and close it (rank 0)."""
    for logger in trainer.loggers:
        if hasattr(logger, "finish") and trainer.is_global_zero:
            scalars = {k: v for k, v in result.items() if isinstance(v, int | float | str)}
            logger.experiment.summary.update(scalars)
            logger.finish("success" if result["status"] == "ok" else "failed")


def execute(run: dict[str, Any]) -> int:
    """Run one cell and write its result atomically (rank 0); the process's exit code.

    Example (not run as a doctest: it trains a model; the runner writes RUN.json):
        >>> execute(json.loads(Path("RUN.json").read_text()))  # doctest: +SKIP
        0
    """
    result_path = Path(run["out"]) / "results" / f"{run['run_id']}{RESULT_SUFFIX}"
    try:
        result = run_cell(run)
    except Exception as err:
        from cnnbench.models.layers import GeometryError

        rank = int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0")))
        if rank == 0:
            status = "infeasible" if isinstance(err, GeometryError) else "failed"
            write_json_atomic(
                result_path,
                {
                    "run_id": run["run_id"],
                    **run["cell"],
                    "status": status,
                    "error": f"{type(err).__name__}: {err}",
                    "traceback": traceback.format_exc(),
                },
            )
        print(traceback.format_exc(), file=sys.stderr)
        return 1
    if result is not None:
        write_json_atomic(result_path, result)
    from cnnbench.training import release_distributed

    release_distributed()  # a finished multi-device cell: no abort at exit
    return 0 if result is None or result["status"] == "ok" else 1


def main(argv: list[str] | None = None) -> int:
    """``python -m cnnbench.bench.cell RUN.json``: one cell in this process."""
    args = sys.argv[1:] if argv is None else argv
    return execute(json.loads(Path(args[0]).read_text()))


if __name__ == "__main__":
    sys.exit(main())
