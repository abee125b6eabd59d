"""What every cnnbench fit gets on top of a plain ``Trainer``: callbacks that keep results
safe (atomic, finite checkpoints; a checkpoint on any interruption; RNG state for exact
resume; divergence detection), throughput in the progress bar, and loggers (CSV always,
W&B on request, offline when no credentials are configured).

Example:
    >>> import lightning as L
    >>> trainer = L.Trainer(**trainer_extras("runs", "lenet5"), max_steps=1)  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import csv
import math
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint, RichProgressBar
from lightning.pytorch.loggers import CSVLogger, Logger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.profilers import PassThroughProfiler

from cnnbench.checkpoint import AtomicCheckpointIO
from cnnbench.models.base import DivergedError


def weights_finite(module: torch.nn.Module) -> bool:
    """True when every parameter is finite (one device sync)."""
    flags = [torch.isfinite(p).all() for p in module.parameters()]
    return bool(torch.stack(flags).all()) if flags else True


class SafeModelCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint`` that never writes non-finite weights over a good checkpoint, and
    that also saves ``last`` when a fit ends between validations (``max_steps``, ``max_time``)."""

    @property
    def state_key(self) -> str:
        # Lightning formats this key (a repr of five settings) for each of the ~7 callback
        # hooks of every training step; the settings are fixed once constructed
        key: str | None = self.__dict__.get("_cached_state_key")
        if key is None:
            key = self.__dict__["_cached_state_key"] = super().state_key
        return key

    def _save_checkpoint(self, trainer: L.Trainer, filepath: str) -> None:
        if not weights_finite(trainer.lightning_module):
            return
        super()._save_checkpoint(trainer, filepath)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if (
            self.save_last
            and not getattr(trainer, "fast_dev_run", False)
            and trainer.global_step != self._last_global_step_saved
        ):
            batches = trainer.fit_loop.epoch_loop.batch_progress.current.completed
            self._ended_mid_epoch = batches < trainer.num_training_batches
            try:
                self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
            finally:
                self._ended_mid_epoch = False

    _ended_mid_epoch = False

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        if self._ended_mid_epoch:
            # a fit ended mid-epoch by max_steps/max_time: Lightning counts the epoch as
            # done, so continuing with a larger limit would start the next epoch (another
            # sample order); store it as mid-epoch so `--ckpt_path last` continues this one
            epochs = checkpoint["loops"]["fit_loop"]["epoch_progress"]
            for part in ("total", "current"):
                epochs[part]["processed"] -= 1
                epochs[part]["completed"] -= 1


class InterruptCheckpoint(Callback):
    """On any exception (SIGTERM, Ctrl-C, a crash) save ``last.ckpt`` so ``--ckpt_path last``
    continues from the exact step; skipped after divergence, with non-finite weights, and
    in multi-process runs for errors of a single rank (the others cannot join the save)."""

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        for logger in trainer.loggers:  # keep the metrics logged so far
            logger.save()
        from lightning.pytorch.utilities.exceptions import SIGTERMException

        ckpt = trainer.checkpoint_callback
        if (
            isinstance(exception, DivergedError)
            # saving is a collective under DDP: only possible when every rank stops together
            or (trainer.world_size > 1 and not isinstance(exception, SIGTERMException))
            or not isinstance(ckpt, ModelCheckpoint)
            or ckpt.dirpath is None
            or trainer.state.fn != "fit"
            or trainer.global_step == 0  # nothing trained yet (e.g. bad data in setup)
            or not weights_finite(pl_module)
        ):
            return
        path = os.path.join(ckpt.dirpath, ckpt.CHECKPOINT_NAME_LAST + ckpt.FILE_EXTENSION)
        ckpt.last_model_path = path
        self._saving = True
        try:
            trainer.save_checkpoint(path, weights_only=False)  # the full state; says so (no log line)
        finally:
            self._saving = False

    _saving = False

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        if not self._saving:
            return
        # Lightning adds 1 to the logging step on restart unless the checkpoint was taken
        # after a batch ended; one taken inside a step must store the step one lower so the
        # resumed run logs each step under the same number as an uninterrupted run
        total = checkpoint["loops"]["fit_loop"]["epoch_loop.batch_progress"]["total"]
        after_batch = total["started"] == total["ready"] == total["processed"] and total["completed"] in (
            total["processed"],
            total["processed"] - 1,
        )
        if not after_batch:
            checkpoint["loops"]["fit_loop"]["epoch_loop.state_dict"]["_batches_that_stepped"] -= 1
        loops = checkpoint["loops"]["fit_loop"]
        epochs = loops["epoch_progress"]
        if epochs["total"]["ready"] == epochs["total"]["started"] + 1:
            # stopped in on_train_epoch_start: Lightning would resume into the finished
            # epoch's batch counters and end the fit without training; store the end of
            # the previous epoch instead, so the resumed fit starts this epoch afresh
            for part in ("total", "current"):
                epochs[part]["ready"] = epochs[part]["started"]
        total = epochs["total"]
        if total["ready"] == total["started"] == total["processed"] == total["completed"] + 1:
            # stopped in on_train_epoch_end: Lightning would resume in the next epoch, never
            # running this epoch's end hooks (its train/acc); store the state after the last
            # batch (and its validation, when one is due there: Lightning skips it on resume
            # and counts the logging step once more) instead, whose resume runs them
            for part in ("total", "current"):
                epochs[part]["processed"] -= 1
            epoch_loop = trainer.fit_loop.epoch_loop
            if epoch_loop._should_check_val_fx(trainer.fit_loop._data_fetcher):  # type: ignore[arg-type]
                loops["epoch_loop.state_dict"]["_batches_that_stepped"] -= 1
        if trainer.validating and not trainer.sanity_checking:
            # stopped during the fit's validation: Lightning would skip the rest of it (and
            # the metrics, the best checkpoint and train/acc of that epoch); store the state
            # "one batch started, none done" that makes it rerun the whole validation
            val = loops["epoch_loop.val_loop.batch_progress"]
            before = val["total"]["completed"] - val["current"]["completed"]
            val["total"] = {"ready": before + 1, "started": before + 1, "processed": before, "completed": before}
            val["current"] = {"ready": 1, "started": 1, "processed": 0, "completed": 0}
            val["is_last_batch"] = False


class RNGState(Callback):
    """Store and restore the Python, NumPy and torch (CPU and CUDA) RNG states, so that a
    resumed run draws the same dropout masks as an uninterrupted one."""

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        # only types that torch.load(weights_only=True) accepts
        version, internal, gauss = random.getstate()
        name, keys, pos, has_gauss, cached = np.random.get_state()  # type: ignore[misc]
        checkpoint["rng_states"] = {
            "python": [version, list(internal), gauss],
            "numpy": [name, torch.from_numpy(np.asarray(keys, dtype=np.int64)), pos, has_gauss, cached],
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        }

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        states = checkpoint.get("rng_states")
        if not states:
            return
        version, internal, gauss = states["python"]
        random.setstate((version, tuple(internal), gauss))
        name, keys, pos, has_gauss, cached = states["numpy"]
        np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
        torch.set_rng_state(states["torch"])
        if states["cuda"] and torch.cuda.is_available() and len(states["cuda"]) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(states["cuda"])


class DivergenceGuard(Callback):
    """Stop training with :class:`DivergedError` once the loss is NaN or infinite.

    Args:
        check_every: Read the loss every this many steps; in between a flag is kept on the
            loss's device. Default: every step on the CPU (reading is free there), every 25
            on a GPU, where each read makes the host wait for the step to finish. A later
            stop loses nothing: :class:`SafeModelCheckpoint` never saves non-finite weights.
    """

    def __init__(self, check_every: int | None = None) -> None:
        if check_every is not None and check_every < 1:
            raise ValueError(f"check_every must be >= 1, got {check_every}")
        self.check_every = check_every
        self._flag: torch.Tensor | None = None

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if loss is None or getattr(pl_module, "step_engine", None) is not None:
            return  # a captured step keeps its own non-finite flag (CapturedStep reads it)
        every = self.check_every or (1 if loss.device.type == "cpu" else 25)
        if every == 1:
            value = loss.item() if loss.numel() == 1 else float(loss.detach().float().sum())
            if not math.isfinite(value):
                raise DivergedError(f"training loss became {value} at {_where(trainer)}")
            return
        bad = ~torch.isfinite(loss.detach()).all()
        self._flag = bad if self._flag is None else self._flag | bad
        if trainer.global_step % every == 0:
            flag, self._flag = self._flag, None
            if flag.item():
                raise DivergedError(f"training loss became NaN or infinite at or before {_where(trainer)}")


def _where(trainer: L.Trainer) -> str:
    return f"step {trainer.global_step} (epoch {trainer.current_epoch})"


class Throughput(Callback):
    """Training images/second in the progress bar (``train/img_s``, over ``window`` steps)
    and in total (``total_images / total_time``), timed from one training-batch end to the
    next so that validation and the first batch of each epoch are not counted."""

    def __init__(self, window: int | None = None) -> None:
        self.window = window  # logs every this many steps; default: on the trainer's logging steps
        self.total_images, self.total_time = 0, 0.0
        self._last: float | None = None
        self._window_images, self._window_time = 0, 0.0

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._last = None

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._last = None

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        now = time.perf_counter()
        if self._last is not None:
            n = len(batch[1])
            self.total_images += n
            self.total_time += now - self._last
            self._window_images += n
            self._window_time += now - self._last
            window = self.window or max(1, getattr(trainer, "log_every_n_steps", 50))
            # logged on the trainer's logging steps only: logging a number makes a device tensor
            # of it, a host-device copy that waits for the GPU (allowed there, not every step)
            if trainer.global_step % window == 0:
                pl_module.log("train/img_s", self._window_images / self._window_time, prog_bar=True, on_epoch=False)
                self._window_images, self._window_time = 0, 0.0
        self._last = now


class NoProfiler(PassThroughProfiler):
    """Lightning's default no-op profiler, minus its cost: Lightning wraps each of the ~45
    hook calls of a training step in ``profiler.profile(...)``, a generator-based context
    manager (~2 µs each) even when it records nothing. Pass ``--trainer.profiler simple``
    (or any profiler) to measure; this one only stands in for "none"."""

    def profile(self, action_name: str) -> Any:
        return contextlib.nullcontext(action_name)


class ProgressBar(RichProgressBar):
    """Lightning's Rich progress bar, redrawn at most every ``min_interval`` seconds while
    training: redrawing gathers every logged metric (~150 µs), which at every step of a
    small model costs a few percent of the training speed. Epoch ends are always drawn."""

    def __init__(self, min_interval: float = 0.1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.min_interval = min_interval
        self._drawn_at = -math.inf

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        now = time.monotonic()
        last = batch_idx + 1 >= trainer.num_training_batches or 0 < trainer.max_steps <= trainer.global_step
        if now - self._drawn_at < self.min_interval and not last:
            return
        self._drawn_at = now
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)


class _AppendingWriter(ExperimentWriter):
    """CSV writer that keeps an existing ``metrics.csv`` (Lightning's deletes it)."""

    def _check_log_dir_exists(self) -> None:
        if self._fs.isfile(self.metrics_file_path):
            with open(self.metrics_file_path, newline="") as fh:
                self.metrics_keys = sorted(csv.DictReader(fh).fieldnames or [])


class ResumableCSVLogger(CSVLogger):
    """``CSVLogger`` that continues the metrics file of a resumed run.

    Rows of steps the resumed run will redo are dropped (see :meth:`truncate_from`), so
    the file ends with the same step sequence as an uninterrupted run.
    """

    @property
    def experiment(self) -> Any:
        if self._experiment is None:
            os.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _AppendingWriter(log_dir=self.log_dir)
        return self._experiment

    def truncate_from(self, step: int) -> None:
        """Drop step-level rows with ``step >= step`` and epoch-level rows after it."""
        path = Path(self.log_dir) / ExperimentWriter.NAME_METRICS_FILE
        if not path.is_file():
            return
        with path.open(newline="") as fh:
            reader = csv.DictReader(fh)
            fields, rows = reader.fieldnames or [], list(reader)

        def redone(row: dict[str, str]) -> bool:
            s = int(float(row["step"]))
            return s > step or (s == step and bool(row.get("train/loss")))

        with path.open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=fields)
            writer.writeheader()
            writer.writerows(r for r in rows if not redone(r))


class ResumeState(Callback):
    """Finish restoring a fit resumed from a checkpoint.

    * Data position: Lightning restores stateful loaders only when it builds them after
      the checkpoint is read; a scheduler sized by ``estimated_stepping_batches`` (OneCycle)
      builds them earlier, so the saved position is applied here, before the first batch.
    * Logs: the CSV log is cut back to the restored step so no step appears twice.
    * Running sums: the model's sums of the unfinished epoch (``train/acc``) and logging
      window (``train/loss``) are stored and put back before the first batch or epoch end,
      so those values equal an uninterrupted run's (single process: each rank has its own).
    """

    _sums: dict[str, Any] | None = None

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        read = getattr(pl_module, "running_sums", None)
        sums = read() if callable(read) else None
        if trainer.world_size == 1 and sums is not None:
            checkpoint["running_sums"] = sums

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        self._sums = checkpoint.get("running_sums")

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._sums = None  # a new epoch: the stored sums belong to a finished one

    def _put_back_sums(self, pl_module: L.LightningModule) -> None:
        restore = getattr(pl_module, "restore_running_sums", None)
        if self._sums is not None and callable(restore):
            restore(self._sums)
        self._sums = None

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self._put_back_sums(pl_module)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._put_back_sums(pl_module)  # resumed at the epoch's end (during or after validation)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        fit_loop = trainer.fit_loop
        pending = getattr(fit_loop, "_combined_loader_states_to_load", None)
        if trainer.ckpt_path and pending and fit_loop._combined_loader is not None:
            fit_loop._combined_loader._load_state_dicts(pending)
            fit_loop._combined_loader_states_to_load = []
        if trainer.ckpt_path and trainer.is_global_zero:
            for logger in trainer.loggers:
                if isinstance(logger, ResumableCSVLogger):
                    logger.truncate_from(trainer.global_step)


@dataclass
class WandbSettings:
    """Weights & Biases options.

    Args:
        project: W&B project.
        entity: Team or user (default: the account's).
        group: Run group (the bench runner uses the grid name).
        name: Run name.
        tags: Run tags.
        mode: ``auto`` (online with credentials, else offline), ``online`` or ``offline``.
        init_timeout: Seconds to wait for the W&B server before falling back to offline.
    """

    project: str = "cnnbench"
    entity: str | None = None
    group: str | None = None
    name: str | None = None
    tags: list[str] = field(default_factory=list)
    mode: str = "auto"
    init_timeout: float = 30.0


def wandb_credentials_configured() -> bool:
    """An API key in the environment or in ``~/.netrc`` for the W&B host."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    import netrc

    host = os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai").split("://")[-1].split("/")[0]
    try:
        return netrc.netrc().authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False


def make_wandb_logger(
    settings: WandbSettings, save_dir: str, config: dict[str, Any] | None = None, **kwargs: Any
) -> Logger:
    """A ``WandbLogger`` that runs offline when no credentials are configured (or the
    server cannot be reached), so training never waits on the network. ``kwargs`` go to
    Lightning's ``WandbLogger`` (``log_model``, ``prefix``, ...)."""
    from cnnbench.wandb_logger import OfflineFallbackWandbLogger

    mode = settings.mode
    if mode == "auto":
        mode = os.environ.get("WANDB_MODE") or ("online" if wandb_credentials_configured() else "offline")
    return OfflineFallbackWandbLogger(
        project=settings.project, entity=settings.entity, group=settings.group, name=settings.name,
        tags=list(settings.tags) or None, save_dir=os.path.abspath(save_dir), offline=mode in ("offline", "dryrun"),
        init_timeout=settings.init_timeout, config=config or {}, **kwargs,
    )  # fmt: skip


def trainer_extras(
    run_dir: str,
    name: str,
    version: int | str | None = None,
    wandb: WandbSettings | None = None,
    config: dict[str, Any] | None = None,
    monitor: str = "val/acc",
    progress_bar: bool = True,
    train_step: str = "auto",
    model_summary: bool = False,
) -> dict[str, Any]:
    """Trainer keyword arguments: loggers, callbacks, the atomic checkpoint plugin and the
    cost-free no-op profiler.

    ``train_step``: ``auto`` captures each training step in a CUDA graph where that is safe
    (see :mod:`cnnbench.train_step`), ``graph`` does too and says why when it cannot,
    ``eager`` never captures."""
    from cnnbench.checkpoint import CheckpointMetadata
    from cnnbench.console import LayerSummary, quiet_console
    from cnnbench.core.compat import require
    from cnnbench.train_step import CapturedStep

    require("lightning", "exact resume (Lightning's private loop state) and weights_only checkpoint loading")
    quiet_console()
    csv_logger = ResumableCSVLogger(save_dir=run_dir, name=name, version=version)
    loggers: list[Logger] = [csv_logger]
    if wandb is not None:
        loggers.append(make_wandb_logger(wandb, save_dir=csv_logger.log_dir, config=config))
    callbacks: list[Callback] = [
        SafeModelCheckpoint(
            dirpath=os.path.join(csv_logger.log_dir, "checkpoints"), filename="best-{epoch}-{step}",
            monitor=monitor, mode="max", save_last=True, enable_version_counter=False,
        ),
        InterruptCheckpoint(), RNGState(), DivergenceGuard(), Throughput(), CapturedStep(train_step), ResumeState(),
        CheckpointMetadata(),
    ]  # fmt: skip
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
