"""One grid run, in its own process: fit, test, robustness, result file.

``python -m cnnbench.bench.cell RUN.json`` is what the runner starts for each cell (and
what Lightning re-executes on every rank of a multi-device cell). The result is written
atomically by rank 0 only: a run either has a complete result file or none.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any

RESULT_SUFFIX = ".json"


def write_json_atomic(path: Path, payload: dict[str, Any]) -> None:
    """Write to a temporary file in the same folder, fsync, then rename into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("w") as fh:
        json.dump(payload, fh, indent=1, sort_keys=True, default=str)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def environment() -> dict[str, Any]:
    """Package versions, git commit and machine, stored with every result."""
    import lightning
    import torch
    import torchvision

    import cnnbench

    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, cwd=Path(cnnbench.__file__).parent
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        commit = ""
    return {
        "cnnbench": cnnbench.__version__, "torch": torch.__version__, "torchvision": torchvision.__version__,
        "lightning": lightning.__version__, "python": platform.python_version(), "git_commit": commit or None,
        "machine": platform.machine(), "cpus": os.cpu_count(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }  # fmt: skip


def build(run: dict[str, Any]) -> tuple[Any, Any]:
    """The data module and model of a run (raises GeometryError for impossible cells)."""
    from cnnbench.data import create_data
    from cnnbench.models import create_model

    cell, data = run["cell"], dict(run["grid"]["data"])
    dm = create_data(data.pop("name"), seed=cell["seed"], **data)
    _, h, w = dm.image_shape
    model = create_model(
        cell["model"], **cell["model_args"], pool=cell["pool"], padding=cell["padding"], padding_mode=cell["padding_mode"],
        num_classes=dm.num_classes, in_channels=dm.image_shape[0], input_size=h if h == w else (h, w),
    )  # fmt: skip
    return dm, model


def run_cell(run: dict[str, Any]) -> dict[str, Any] | None:
    """Fit and evaluate one cell; returns the result on rank 0 (None on other ranks)."""
    import lightning as L
    import torch

    from cnnbench.bench.robustness import evaluate_robustness
    from cnnbench.models import summarize
    from cnnbench.models.base import DivergedError
    from cnnbench.training import Throughput, WandbSettings, trainer_extras

    cell, grid, out = run["cell"], run["grid"], Path(run["out"])
    L.seed_everything(cell["seed"], workers=True, verbose=False)
    dm, model = build(run)
    rows = summarize(model)
    result: dict[str, Any] = {
        "run_id": run["run_id"], "grid": grid["name"], **cell, "status": "running",
        "params": sum(r.params for r in rows), "macs": sum(r.macs for r in rows), "environment": environment(),
    }  # fmt: skip
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
    extras = trainer_extras(
        str(out / "runs"),
        run["run_id"],
        0,
        wandb=wandb,
        config={"cell": cell, "grid": grid, "environment": result["environment"]},
        progress_bar=False,
    )
    trainer = L.Trainer(
        **{"max_epochs": 3, "enable_model_summary": False, "log_every_n_steps": 50, **grid["trainer"]},
        precision=cell["precision"], devices=cell["devices"], enable_progress_bar=False, **extras,
    )  # fmt: skip
    started = time.perf_counter()
    try:
        trainer.fit(model, dm)
    except DivergedError as err:
        result.update(status="diverged", error=str(err))
    result["train_time_s"] = time.perf_counter() - started
    result["epochs"] = trainer.current_epoch
    throughput = next(c for c in trainer.callbacks if isinstance(c, Throughput))  # type: ignore[attr-defined]
    result["images_per_s"] = throughput.total_images / max(throughput.total_time, 1e-9)
    ckpt = trainer.checkpoint_callback
    score = getattr(ckpt, "best_model_score", None)
    result["best_val_acc"] = float(score) if score is not None else None
    if result["status"] == "running":
        best = getattr(ckpt, "best_model_path", "")
        metrics = trainer.test(model, dm, ckpt_path="best" if best else None, verbose=False)[0]
        result.update(status="ok", test_acc=metrics.get("test/acc"), test_loss=metrics.get("test/loss"))
        if trainer.is_global_zero:
            images, labels = dm.splits["test"]
            limit = grid["robustness"].get("max_images")
            rob = grid["robustness"]
            result["robustness"] = evaluate_robustness(
                trainer.lightning_module, images[:limit], labels[:limit], dm.normalize,
                shifts=rob["shifts"], fill=rob.get("fill", "zero"), border=rob.get("border"),
            )  # fmt: skip
    if torch.cuda.is_available() and cell["devices"] and trainer.strategy.root_device.type == "cuda":
        result["peak_memory_mb"] = torch.cuda.max_memory_allocated() / 2**20
    else:
        result["peak_memory_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    for logger in trainer.loggers:
        if hasattr(logger, "finish") and trainer.is_global_zero:
            scalars = {k: v for k, v in result.items() if isinstance(v, int | float | str)}
            logger.experiment.summary.update(scalars)  # type: ignore[attr-defined]
            logger.finish("success" if result["status"] == "ok" else "failed")  # type: ignore[attr-defined]
    if not run.get("keep_checkpoints"):
        import shutil

        shutil.rmtree(out / "runs" / run["run_id"] / "version_0" / "checkpoints", ignore_errors=True)
    return result if trainer.is_global_zero else None


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    run = json.loads(Path(args[0]).read_text())
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
    return 0 if result is None or result["status"] == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())
