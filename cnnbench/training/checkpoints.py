"""Checkpoint callbacks that keep results safe: never a non-finite checkpoint over a good one,
a ``last`` checkpoint when a fit ends between validations, and one on any interruption.

How those checkpoints store Lightning's loop state so that ``--ckpt_path last`` resumes
exactly is :mod:`cnnbench.training.resume`'s business.

Example:
    >>> ckpt = SafeModelCheckpoint(monitor="val/acc", mode="max", save_last=True)
    >>> ckpt.state_key.startswith("SafeModelCheckpoint{'monitor': 'val/acc'")
    True
"""

from __future__ import annotations

import os
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback, ModelCheckpoint

from cnnbench.models.base import DivergedError
from cnnbench.training.monitors import weights_finite
from cnnbench.training.resume import LastAtFitEnd, rewind_interrupted_loops


class SafeModelCheckpoint(LastAtFitEnd):
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


class InterruptCheckpoint(Callback):
    """On any exception (SIGTERM, Ctrl-C, a crash) save ``last.ckpt`` so ``--ckpt_path last``
    continues from the exact step; skipped after divergence, with non-finite weights, and
    in multi-process runs for errors of a single rank (the others cannot join the save)."""

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        for logger in trainer.loggers:  # keep the metrics logged so far
            logger.save()
        ckpt = trainer.checkpoint_callback
        if (
            not isinstance(ckpt, ModelCheckpoint)
            or ckpt.dirpath is None
            or not _can_save(trainer, pl_module, exception)
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
        if self._saving:
            rewind_interrupted_loops(trainer, checkpoint)


def _can_save(trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> bool:
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    return not (
        isinstance(exception, DivergedError)
        # saving is a collective under DDP: only possible when every rank stops together
        or (trainer.world_size > 1 and not isinstance(exception, SIGTERMException))
        or trainer.state.fn != "fit"
        or trainer.global_step == 0  # nothing trained yet (e.g. bad data in setup)
        or not weights_finite(pl_module)
    )
