"""Callbacks that watch a fit: a NaN/infinite loss stops it (:class:`DivergenceGuard`), and the
training speed is shown in the progress bar (:class:`Throughput`).

Example:
    >>> import torch
    >>> weights_finite(torch.nn.Linear(2, 2))
    True
    >>> DivergenceGuard(check_every=25).check_every
    25
"""

from __future__ import annotations

import math
import time
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

from cnnbench.models.base import DivergedError


def weights_finite(module: torch.nn.Module) -> bool:
    """True when every parameter is finite (one device sync)."""
    flags = [torch.isfinite(p).all() for p in module.parameters()]
    return bool(torch.stack(flags).all()) if flags else True


class DivergenceGuard(Callback):
    """Stop training with :class:`DivergedError` once the loss is NaN or infinite.

    Args:
        check_every: Read the loss every this many steps; in between a flag is kept on the
            loss's device. Default: every step on the CPU (reading is free there), every 25
            on a GPU, where each read makes the host wait for the step to finish. A later
            stop loses nothing: :class:`~cnnbench.training.checkpoints.SafeModelCheckpoint`
            never saves non-finite weights.
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
