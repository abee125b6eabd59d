"""Callbacks the CLI tests add with ``--trainer.callbacks+=probes.NAME``: stop a fit at a chosen
point, or record what the training forward pass computed in."""

from __future__ import annotations

import os
import signal
from typing import Any

import lightning as L
import torch


class StopAt(L.Callback):
    """Stop the fit once, at the start of Lightning hook ``hook`` when the trainer is at
    ``epoch`` and ``step`` (``batch`` for the validation hooks; ``None`` matches any).

    Args:
        hook: ``train_batch_start``, ``train_epoch_start``, ``train_epoch_end`` or
            ``validation_batch_start``.
        how: ``raise`` (a RuntimeError, like a crash) or ``sigterm`` (a real SIGTERM sent to
            this process: Lightning's handler stops the fit at its next check).
    """

    def __init__(
        self, hook: str, how: str = "raise", epoch: int | None = None, step: int | None = None, batch: int | None = None
    ) -> None:
        self.hook, self.how, self.epoch, self.step, self.batch = hook, how, epoch, step, batch
        self.done = False

    def _maybe_stop(self, hook: str, trainer: L.Trainer, batch_idx: int | None = None) -> None:
        if self.done or hook != self.hook or trainer.sanity_checking:
            return
        if self.epoch is not None and trainer.current_epoch != self.epoch:
            return
        if self.step is not None and trainer.global_step != self.step:
            return
        if self.batch is not None and batch_idx != self.batch:
            return
        self.done = True
        if self.how == "sigterm":
            os.kill(os.getpid(), signal.SIGTERM)
        else:
            raise RuntimeError(f"injected stop at {hook} (epoch {trainer.current_epoch}, step {trainer.global_step})")

    # a resumed fit re-creates the callbacks of the run's saved config.yaml: stop only once per run
    def state_dict(self) -> dict[str, Any]:
        return {"done": self.done}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.done = bool(state_dict.get("done", False))

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: Any, batch: Any, batch_idx: int) -> None:
        self._maybe_stop("train_batch_start", trainer, batch_idx)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: Any) -> None:
        self._maybe_stop("train_epoch_start", trainer)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        self._maybe_stop("train_epoch_end", trainer)

    def on_validation_batch_start(
        self, trainer: L.Trainer, pl_module: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        self._maybe_stop("validation_batch_start", trainer, batch_idx)


class RecordDtypes(L.Callback):
    """Record the dtype of every ``nn.Linear`` output and parameter during training steps
    (in the class attribute ``seen``: the CLI builds the instance)."""

    seen: set[str] = set()

    def on_train_start(self, trainer: L.Trainer, pl_module: Any) -> None:
        def hook(module: torch.nn.Module, args: Any, output: torch.Tensor) -> None:
            if module.training:
                RecordDtypes.seen.add(f"output:{output.dtype}")
                RecordDtypes.seen.update(f"weight:{p.dtype}" for p in module.parameters())

        for module in pl_module.modules():
            if isinstance(module, torch.nn.Linear):
                module.register_forward_hook(hook)


class RecordData(L.Callback):
    """Write to ``path`` (JSON) what the data seed decides in a fit: the validation split,
    the labels of the first training batch in order, and the first batch's augmentation (the
    preset applied with the seed that batch carried, to a fixed pattern)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.seeds: list[int] = []

    def on_train_start(self, trainer: L.Trainer, pl_module: Any) -> None:
        dm = trainer.datamodule
        self.preset = real = dm.augmentation

        def recording(x: torch.Tensor, seed: Any, **kwargs: Any) -> torch.Tensor:
            self.seeds.append(int(seed))
            return real(x, seed=seed, **kwargs)

        dm.augmentation = recording

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: Any, batch: Any, batch_idx: int) -> None:
        if trainer.global_step != 0:
            return
        import json

        dm = trainer.datamodule
        pattern = (torch.arange(2 * 32 * 32) % 251).to(torch.uint8).reshape(2, 1, 32, 32)
        augmented = self.preset(pattern, seed=self.seeds[0])
        record = {
            "val_split": dm.split_indices["val"].tolist(),
            "first_batch_labels": batch[1].tolist(),
            "augmentation": augmented.float().flatten().tolist(),
        }
        with open(self.path, "w") as fh:
            json.dump(record, fh)
