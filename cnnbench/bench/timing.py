"""Where a grid cell's time goes: wall-clock marks stored in its result.

A cell's result holds ``t_launch`` (the runner handed it out), ``t_first_step`` (its
first training batch starts), ``t_train_end``, ``t_eval_end`` (test and robustness done)
and ``t_exit`` (the runner saw its process end), all ``time.time()`` seconds so that
marks taken in different processes compare; plus ``val_time_s`` (validation inside the
fit), ``test_time_s`` and ``robustness_time_s``. :func:`breakdown` turns them into the
figures ``benchmarks/bench_grid.py`` prints.

Example:
    >>> breakdown({"t_launch": 0.0, "t_first_step": 0.5, "t_train_end": 2.5, "val_time_s": 0.5,
    ...            "test_time_s": 0.25, "robustness_time_s": 0.25, "t_eval_end": 3.0, "t_exit": 3.25})["fixed_s"]
    0.75
"""

from __future__ import annotations

import time
from typing import Any

import lightning as L


class Timeline(L.Callback):
    """Records the start of the first training batch and the time spent validating during fit."""

    def __init__(self) -> None:
        self.t_first_step: float | None = None
        self.val_time_s = 0.0
        self._val_started: float | None = None

    def on_train_batch_start(self, trainer: L.Trainer, *args: Any) -> None:
        if self.t_first_step is None:
            self.t_first_step = time.time()

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._val_started = time.perf_counter()

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._val_started is not None:
            self.val_time_s += time.perf_counter() - self._val_started
            self._val_started = None


def breakdown(result: dict[str, Any]) -> dict[str, float | None]:
    """Fixed cost, training, evaluation and wall seconds of one finished cell's result.

    ``fixed_s`` is launch → first training step plus evaluation end → process exit;
    ``train_s`` is first step → end of fit, less validation; ``eval_s`` is validation,
    test and robustness; ``other_s`` is the rest of the wall time (e.g. loading the best
    checkpoint for the test). Missing marks give None.
    """
    keys = ("t_launch", "t_first_step", "t_train_end", "t_eval_end", "t_exit")
    if any(not isinstance(result.get(k), int | float) for k in keys):
        return dict.fromkeys(("start_s", "exit_s", "fixed_s", "train_s", "eval_s", "other_s", "wall_s"))
    t0, first, train_end, eval_end, exit_ = (float(result[k]) for k in keys)
    val = float(result.get("val_time_s") or 0.0)
    evaluation = val + float(result.get("test_time_s") or 0.0) + float(result.get("robustness_time_s") or 0.0)
    start, leave, wall = first - t0, exit_ - eval_end, exit_ - t0
    train = train_end - first - val
    return {
        "start_s": start,
        "exit_s": leave,
        "fixed_s": start + leave,
        "train_s": train,
        "eval_s": evaluation,
        "other_s": wall - (start + leave) - train - evaluation,
        "wall_s": wall,
    }
