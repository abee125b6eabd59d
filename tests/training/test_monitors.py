"""``cnnbench.training.monitors``: the divergence guard reads the loss sparingly and the throughput
is logged on logging steps only (both for speed); each must keep Lightning's behaviour."""

from __future__ import annotations

from typing import Any

import lightning as L
import pytest
from tiny_fit import Tiny, fit, tiny_loader

from cnnbench.models import DivergedError
from cnnbench.training import DivergenceGuard, Throughput


def test_divergence_is_caught_at_its_step_on_cpu_and_by_the_flag_when_reading_is_spaced() -> None:
    with pytest.raises(DivergedError, match="training loss became nan at step 3 "):
        fit(Tiny(nan_at=2), [DivergenceGuard()])
    with pytest.raises(DivergedError, match="at or before step 4 "):
        fit(Tiny(nan_at=1), [DivergenceGuard(check_every=4)])  # NaN at step 2, read at step 4
    fit(Tiny(), [DivergenceGuard(check_every=2)])  # finite losses: no error
    with pytest.raises(ValueError, match="check_every"):
        DivergenceGuard(check_every=0)


def test_throughput_is_logged_on_logging_steps_only() -> None:
    """Logging a number makes a device tensor of it (a host-device copy that waits for the
    GPU): train/img_s must be logged on the trainer's logging steps, not whenever a window fills."""
    logged: list[int] = []

    class Spy(Tiny):
        def log(self, name: str, value: Any, *args: Any, **kwargs: Any) -> None:
            if name == "train/img_s":
                logged.append(self.trainer.global_step)
            super().log(name, value, *args, **kwargs)

    trainer = L.Trainer(
        max_epochs=3,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        callbacks=[Throughput()],
        log_every_n_steps=4,
        enable_progress_bar=False,
    )
    trainer.fit(Spy(), tiny_loader())  # 6 batches an epoch: 18 steps
    assert logged == [4, 8, 12, 16]
