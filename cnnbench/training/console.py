"""What a fit shows on the console: third-party tips, deprecations of code we do not own and
false alarms are filtered by their exact message (:func:`quiet_console`), the model table
lists layers only (:class:`LayerSummary`), the progress bar redraws at most every 0.1 s
(:class:`ProgressBar`), and "no profiler" costs nothing (:class:`NoProfiler`).

Every filter names one message (and where it can, its category and module); nothing
else is hidden, so a real warning still reaches the user.

Example:
    >>> quiet_console()
    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as seen:
    ...     warnings.simplefilter("default")
    ...     quiet_console()
    ...     warnings.warn("`isinstance(treespec, LeafSpec)` is deprecated, use ...", FutureWarning)
    >>> seen
    []
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
import warnings
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import ModelSummary, RichProgressBar
from lightning.pytorch.profilers import PassThroughProfiler

#: (message regex, category) of warnings that say nothing the user can act on
_WARNINGS: tuple[tuple[str, type[Warning]], ...] = (
    # Lightning's own _pytree helper uses a torch API that torch deprecated; not ours to fix
    (r".*isinstance\(treespec, LeafSpec\)` is deprecated", Warning),
    # cnnbench's checkpoint callback monitors val/acc, which its models always log in
    # validation: missing only when a fit stops (max_steps, max_time) before validating
    (r"`ModelCheckpoint\(monitor='val/acc'\)` could not find the monitored key", Warning),
    # Lightning loads its own checkpoints with weights_only=False unless told otherwise;
    # cnnbench writes and reads them (read_checkpoint uses weights_only=True)
    (r"`weights_only` was not set, defaulting to `False`", Warning),
    # we pass LightningCLI the rewritten argv explicitly
    (r".*LightningCLI's args parameter is intended to run from within Python", Warning),
    # cnnbench resumes into the run's own folder on purpose (a new run gets a new folder)
    (r"Checkpoint directory .* exists and is not empty", UserWarning),
)

#: starts of Lightning info lines that advertise other products or describe cnnbench's own setup
_TIPS = ("💡 Tip:", "Trainer already configured with model summary callbacks")


class _DropTips(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.getMessage()).startswith(_TIPS)


def quiet_console() -> None:
    """Install the narrow filters above (idempotent)."""
    for message, category in _WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
        log = logging.getLogger(name)
        if not any(isinstance(f, _DropTips) for f in log.filters):
            log.addFilter(_DropTips())


class LayerSummary(ModelSummary):
    """Lightning's model table without the metric objects (``val_acc``, ``test_acc``
    are torchmetrics modules, not layers) and without the FLOPs column, which Lightning
    fills with zeros unless the model defines ``example_input_array``.

    ``cnnbench summary`` prints the full per-layer table (shapes, MACs, receptive fields).
    """

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self._max_depth or not trainer.is_global_zero:
            return
        from torchmetrics import Metric

        summary = self._summary(trainer, pl_module)
        data = dict(summary._get_summary_data())
        layers = list(summary._layer_summary.values())
        keep = [i for i, layer in enumerate(layers) if not isinstance(layer._module, Metric)]
        keep += list(range(len(layers), len(data["Name"])))  # Lightning's "leftover params" row
        columns = [c for c in data if c not in (" ", "FLOPs")]
        rows = [[str(n + 1)] + [data[c][i] for c in columns] for n, i in enumerate(keep)]
        _print_table([" ", *columns], rows, summary.total_parameters, summary.trainable_parameters)


def _print_table(head: list[str], rows: list[list[str]], total: int, trainable: int) -> None:
    from lightning.pytorch.utilities.model_summary.model_summary import get_human_readable_count
    from rich import get_console
    from rich.table import Table

    table = Table(header_style="bold magenta")
    for name in head:
        table.add_column(name, justify="right" if name in ("Params", " ") else "left")
    for row in rows:
        table.add_row(*row)
    console: Any = get_console()
    console.print(table)
    console.print(
        f"Trainable params: {get_human_readable_count(trainable)}   "
        f"Non-trainable: {get_human_readable_count(total - trainable)}   Total: {get_human_readable_count(total)}"
    )


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
