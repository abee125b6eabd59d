"""The callbacks ``cnnbench fit|validate|test`` adds to every trainer.

* :class:`ScheduleCheck`: a resumed fit whose one-cycle/cosine schedule would need a
  different length stops before training with what to do.
* :class:`MarkStarted`: records that training began (a fit that fails before its first
  step leaves no run folder behind).
* :class:`CtrlCStopsLikeSigterm`: the first Ctrl-C stops at a step boundary with
  ``last.ckpt`` saved.

Example:
    >>> _total({"total_steps": 40, "T_max": None}), _total({"T_max": 12}), _total({})
    (40, 12, None)
"""

from __future__ import annotations

import signal
import sys
import threading
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback

from cnnbench.cli.invocation import RunState


class ScheduleCheck(Callback):
    """Refuse, before the first step, to resume a learning-rate schedule sized for a
    different number of steps.

    One-cycle and cosine schedules are sized by the run's total steps. Loading the saved
    schedule into a longer run fails after the old total (one-cycle: "Tried to step 4
    times") or restarts the cosine; neither continues the run the user asked for.

    Args:
        saved: The ``lr_schedulers`` state dicts stored in the checkpoint.
    """

    def __init__(self, saved: list[dict[str, Any]]) -> None:
        self.saved = saved

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # runs after configure_optimizers and before the saved schedule is loaded into it
        configs = trainer.lr_scheduler_configs
        kind = pl_module.hparams.get("scheduler", "?")
        if self.saved and not configs:
            raise ValueError(
                f"--model.scheduler {kind} cannot continue a run trained with a learning-rate schedule (its learning "
                "rate ended near 0).\n  Start a new run instead (drop --ckpt_path)."
            )
        for config, state in zip(configs, self.saved):
            old, new = _total(state), _total(vars(config.scheduler))
            if old is not None and new is not None and old != new:
                raise ValueError(
                    f"the checkpoint's {kind} learning-rate schedule was sized for {old} steps but this run needs "
                    f"{new}; a finished {kind} schedule cannot be extended.\n  Start a new run with the new length "
                    "(drop --ckpt_path), or train with --model.scheduler none to be able to extend a run later."
                )


class MarkStarted(Callback):
    """Records in the run state that training began (the run folder is then kept)."""

    def __init__(self, state: RunState) -> None:
        self.state = state

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.state.started = True


class CtrlCStopsLikeSigterm(Callback):
    """During training, the first Ctrl-C stops the fit the way SIGTERM does: at the end of
    the running step (or validation batch), with ``last.ckpt`` saved, so that
    ``--ckpt_path last`` continues exactly. A second Ctrl-C aborts at once.

    A ``KeyboardInterrupt`` raised wherever Python happens to be (inside an optimizer
    update, a logger, a callback) could save a half-updated state. Sets Lightning's
    ``received_sigterm`` flag (``trainer._signal_connector``; Lightning 2.4-2.6), the flag
    its loops check at step boundaries.
    """

    def __init__(self, state: RunState) -> None:
        self.state = state
        self._previous: Any = None

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # signal handlers can only be set there

        def stop(signum: int, frame: Any) -> None:
            signal.signal(signal.SIGINT, signal.default_int_handler)  # the next Ctrl-C aborts
            self.state.stopped_by = "Ctrl-C"
            print("\ncnnbench: Ctrl-C: stopping after this step (Ctrl-C again aborts)", file=sys.stderr, flush=True)
            trainer._signal_connector.received_sigterm = True

        self._previous = signal.signal(signal.SIGINT, stop)

    def _restore(self) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._restore()

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self._restore()


def _total(state: dict[str, Any]) -> int | None:
    """Steps a OneCycleLR (``total_steps``) or CosineAnnealingLR (``T_max``) was sized for."""
    for key in ("total_steps", "T_max"):
        if isinstance(state.get(key), int):
            return int(state[key])
    return None
