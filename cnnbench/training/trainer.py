"""What every cnnbench fit gets on top of a plain ``Trainer`` (:func:`trainer_extras`), the
run folder's version numbering (:func:`next_version`) and the clean end of a multi-process
fit (:func:`release_distributed`).

Example:
    >>> next_version("no-such-folder", "lenet5")
    0
    >>> import lightning as L
    >>> trainer = L.Trainer(**trainer_extras("runs", "lenet5", version=0), max_steps=1)
    >>> type(trainer.profiler).__name__
    'NoProfiler'
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import Logger

from cnnbench.checkpoint import AtomicCheckpointIO, CheckpointMetadata
from cnnbench.core.vocab import StepMode
from cnnbench.training.captured_step import CapturedStep
from cnnbench.training.checkpoints import InterruptCheckpoint, SafeModelCheckpoint
from cnnbench.training.console import LayerSummary, NoProfiler, ProgressBar, quiet_console
from cnnbench.training.monitors import DivergenceGuard, Throughput
from cnnbench.training.resume import ResumableCSVLogger, ResumeState, RNGState
from cnnbench.training.wandb import WandbSettings, make_wandb_logger


def trainer_extras(
    run_dir: str,
    name: str,
    version: int | str | None = None,
    wandb: WandbSettings | None = None,
    config: dict[str, Any] | None = None,
    monitor: str = "val/acc",
    progress_bar: bool = True,
    train_step: StepMode = "auto",
    model_summary: bool = False,
) -> dict[str, Any]:
    """Trainer keyword arguments: loggers, callbacks, the atomic checkpoint plugin and the
    cost-free no-op profiler.

    ``train_step``: ``auto`` captures each training step in a CUDA graph where that is safe
    (see :mod:`cnnbench.training.captured_step`), ``graph`` does too and says why when it
    cannot, ``eager`` never captures."""
    from cnnbench.core.compat import require

    require("lightning", "exact resume (Lightning's private loop state) and weights_only checkpoint loading")
    quiet_console()
    csv_logger = ResumableCSVLogger(save_dir=run_dir, name=name, version=version)
    loggers: list[Logger] = [csv_logger]
    if wandb is not None:
        loggers.append(make_wandb_logger(wandb, save_dir=csv_logger.log_dir, config=config))
    best = SafeModelCheckpoint(
        dirpath=os.path.join(csv_logger.log_dir, "checkpoints"),
        filename="best-{epoch}-{step}",
        monitor=monitor,
        mode="max",
        save_last=True,
        enable_version_counter=False,
    )
    callbacks: list[Callback] = [best, InterruptCheckpoint(), RNGState(), DivergenceGuard(), Throughput()]
    # ResumeState after CapturedStep: the engine's sums are folded into the model's before they are stored
    callbacks += [CapturedStep(train_step), ResumeState(), CheckpointMetadata()]
    if progress_bar:
        callbacks.append(ProgressBar())
    if model_summary:  # layers only; Lightning's own table also lists the metric objects
        callbacks.append(LayerSummary())
    return {"logger": loggers, "callbacks": callbacks, "plugins": [AtomicCheckpointIO()], "profiler": NoProfiler()}


def next_version(run_dir: str, name: str) -> int:
    """The next free ``version_N`` under ``run_dir/name``."""
    folder = Path(run_dir) / name
    taken = [int(p.name.split("_")[1]) for p in folder.glob("version_*") if p.name.split("_")[1].isdigit()]
    return max(taken, default=-1) + 1


def release_distributed() -> None:
    """Destroy the default process group of a finished multi-process fit before the
    interpreter exits. Left to Python's final clean-up, gloo's threads can abort the process
    after the fit succeeded ("terminate called without an active exception", exit -6)."""
    import sys

    if "torch.distributed" not in sys.modules:
        return
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
