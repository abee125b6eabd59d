"""Exact resume: every place cnnbench edits Lightning's private loop state lives in this file.

Tested against Lightning 2.6.0 (the oldest supported version, ``.ci/oldest-constraints.txt``)
and 2.6.6 (current). After a Lightning upgrade, rerun ``tests/reliability/test_cli_resume.py``,
``tests/reliability/test_resume.py`` and ``tests/training/``; these are the names to check:

* ``fit_loop._combined_loader``, ``._combined_loader_states_to_load`` and
  ``CombinedLoader._load_state_dicts`` (:class:`ResumeState`: the data position when a
  scheduler sized by ``estimated_stepping_batches`` builds the loaders before the checkpoint
  is read);
* the checkpoint's ``loops.fit_loop`` progress counters and
  ``epoch_loop.state_dict._batches_that_stepped``, ``epoch_loop._should_check_val_fx`` and
  ``fit_loop._data_fetcher`` (:func:`rewind_interrupted_loops`, :func:`store_epoch_unfinished`);
* ``ModelCheckpoint._last_global_step_saved``, ``._save_last_checkpoint`` and
  ``._monitor_candidates`` (:class:`LastAtFitEnd`);
* ``fit_loop._skip_backward`` (:func:`skip_lightning_backward`, for the captured step);
* ``ExperimentWriter._check_log_dir_exists``, ``._fs`` and ``CSVLogger._experiment``
  (:class:`ResumableCSVLogger`).

Private names used elsewhere, none of them loop state: ``ModelCheckpoint._save_checkpoint``
(``checkpoints.py``, skips non-finite weights), ``ModelSummary._max_depth``/``._summary`` and
the summary's ``_get_summary_data``/``_layer_summary``/``_module`` (``console.py``),
``WandbLogger._wandb_init``, ``._offline``, ``._experiment``, ``._save_dir`` (``wandb.py``),
and torch's ``optimizer._opt_called`` (``captured_step.py``).

Example:
    >>> trainer_state = {"loops": {"fit_loop": {"epoch_progress": {
    ...     part: {"ready": 2, "started": 2, "processed": 2, "completed": 2} for part in ("total", "current")}}}}
    >>> store_epoch_unfinished(trainer_state)
    >>> trainer_state["loops"]["fit_loop"]["epoch_progress"]["total"]
    {'ready': 2, 'started': 2, 'processed': 1, 'completed': 1}
"""

from __future__ import annotations

import csv
import os
import random
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter


# ----------------------------------------------------------------------------- checkpoint loop state
def store_epoch_unfinished(checkpoint: dict[str, Any]) -> None:
    """Store a fit ended mid-epoch (by ``max_steps``/``max_time``) as mid-epoch.

    Lightning counts the epoch as done, so continuing with a larger limit would start the next
    epoch (another sample order); stored as unfinished, ``--ckpt_path last`` continues this one.
    """
    epochs = checkpoint["loops"]["fit_loop"]["epoch_progress"]
    for part in ("total", "current"):
        epochs[part]["processed"] -= 1
        epochs[part]["completed"] -= 1


def rewind_interrupted_loops(trainer: L.Trainer, checkpoint: dict[str, Any]) -> None:
    """Edit the loop state of a checkpoint saved on an interruption so that the resumed run
    repeats exactly what the interrupted one had not finished (and logs each step under the
    same number as an uninterrupted run)."""
    loops = checkpoint["loops"]["fit_loop"]
    _rewind_step_inside_a_batch(loops)
    _rewind_epoch_start(loops)
    _rewind_epoch_end(trainer, loops)
    if trainer.validating and not trainer.sanity_checking:
        _rewind_validation(loops)


def _rewind_step_inside_a_batch(loops: dict[str, Any]) -> None:
    # Lightning adds 1 to the logging step on restart unless the checkpoint was taken after a
    # batch ended; one taken inside a step must store the step one lower
    total = loops["epoch_loop.batch_progress"]["total"]
    after_batch = total["started"] == total["ready"] == total["processed"] and total["completed"] in (
        total["processed"],
        total["processed"] - 1,
    )
    if not after_batch:
        loops["epoch_loop.state_dict"]["_batches_that_stepped"] -= 1


def _rewind_epoch_start(loops: dict[str, Any]) -> None:
    # stopped in on_train_epoch_start: Lightning would resume into the finished epoch's batch
    # counters and end the fit without training; store the end of the previous epoch instead,
    # so the resumed fit starts this epoch afresh
    epochs = loops["epoch_progress"]
    if epochs["total"]["ready"] == epochs["total"]["started"] + 1:
        for part in ("total", "current"):
            epochs[part]["ready"] = epochs[part]["started"]


def _rewind_epoch_end(trainer: L.Trainer, loops: dict[str, Any]) -> None:
    # stopped in on_train_epoch_end: Lightning would resume in the next epoch, never running
    # this epoch's end hooks (its train/acc); store the state after the last batch (and its
    # validation, when one is due there: Lightning skips it on resume and counts the logging
    # step once more) instead, whose resume runs them
    epochs = loops["epoch_progress"]
    total = epochs["total"]
    if total["ready"] == total["started"] == total["processed"] == total["completed"] + 1:
        for part in ("total", "current"):
            epochs[part]["processed"] -= 1
        epoch_loop = trainer.fit_loop.epoch_loop
        if epoch_loop._should_check_val_fx(trainer.fit_loop._data_fetcher):  # type: ignore[arg-type]
            loops["epoch_loop.state_dict"]["_batches_that_stepped"] -= 1


def _rewind_validation(loops: dict[str, Any]) -> None:
    # stopped during the fit's validation: Lightning would skip the rest of it (and the
    # metrics, the best checkpoint and train/acc of that epoch); store the state "one batch
    # started, none done" that makes it rerun the whole validation
    val = loops["epoch_loop.val_loop.batch_progress"]
    before = val["total"]["completed"] - val["current"]["completed"]
    val["total"] = {"ready": before + 1, "started": before + 1, "processed": before, "completed": before}
    val["current"] = {"ready": 1, "started": 1, "processed": 0, "completed": 0}
    val["is_last_batch"] = False


def skip_lightning_backward(trainer: L.Trainer, skip: bool) -> None:
    """Tell Lightning's loop not to run ``backward`` (the captured step computes the gradients)."""
    trainer.fit_loop._skip_backward = skip


class LastAtFitEnd(ModelCheckpoint):
    """``ModelCheckpoint`` that also saves ``last`` when a fit ends between validations
    (``max_steps``, ``max_time``), stored as mid-epoch when it ended mid-epoch."""

    _ended_mid_epoch = False

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

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        if self._ended_mid_epoch:
            store_epoch_unfinished(checkpoint)


# ----------------------------------------------------------------------------- RNG state
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


# ----------------------------------------------------------------------------- the CSV log
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


# ----------------------------------------------------------------------------- finishing a resume
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
        if trainer.ckpt_path:
            _load_pending_loader_state(trainer)
        if trainer.ckpt_path and trainer.is_global_zero:
            for logger in trainer.loggers:
                if isinstance(logger, ResumableCSVLogger):
                    logger.truncate_from(trainer.global_step)


def _load_pending_loader_state(trainer: L.Trainer) -> None:
    """Apply the data position Lightning read from the checkpoint but has not given the loaders."""
    fit_loop = trainer.fit_loop
    pending = getattr(fit_loop, "_combined_loader_states_to_load", None)
    if pending and fit_loop._combined_loader is not None:
        fit_loop._combined_loader._load_state_dicts(pending)
        fit_loop._combined_loader_states_to_load = []
