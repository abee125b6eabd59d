"""Training: what every cnnbench fit gets on top of a plain Lightning ``Trainer``.

One concern a module:

* ``trainer.py``: :func:`trainer_extras` (the loggers, callbacks, checkpoint plugin and profiler
  of a fit), :func:`next_version`, :func:`release_distributed`.
* ``checkpoints.py``: :class:`SafeModelCheckpoint` (never a non-finite checkpoint; ``last`` at a
  fit's end), :class:`InterruptCheckpoint` (``last.ckpt`` on SIGTERM, Ctrl-C or a crash).
* ``resume.py``: exact resume, and *every* edit of Lightning's private loop state, with the
  Lightning versions it was tested against: :class:`RNGState`, :class:`ResumableCSVLogger`,
  :class:`ResumeState` and the loop-state edits the checkpoint callbacks call.
* ``monitors.py``: :class:`DivergenceGuard`, :class:`Throughput`, :func:`weights_finite`.
* ``console.py``: :func:`quiet_console`, :class:`LayerSummary`, :class:`ProgressBar`, :class:`NoProfiler`.
* ``captured_step.py``: the training step as one CUDA-graph replay (:class:`CapturedStep`,
  :class:`StepEngine`, when it applies: :func:`graph_blocker`).
* ``fused_update.py``: the SGD/Adam/AdamW update and gradient clipping it runs (``torch._foreach``).
* ``wandb.py``: :class:`WandbSettings`, :func:`make_wandb_logger`, :class:`OfflineFallbackWandbLogger`.

The names below were all importable from the single module ``cnnbench.training`` before it became
this package, and stay importable from here for compatibility; new code imports from the modules.

Example:
    >>> from cnnbench.training import trainer_extras
    >>> sorted(trainer_extras("runs", "lenet5", version=0, progress_bar=False))
    ['callbacks', 'logger', 'plugins', 'profiler']
"""

from __future__ import annotations

from cnnbench.checkpoint import AtomicCheckpointIO
from cnnbench.models.base import DivergedError
from cnnbench.training.captured_step import CapturedStep, StepEngine, check_step_mode, graph_blocker
from cnnbench.training.checkpoints import InterruptCheckpoint, SafeModelCheckpoint
from cnnbench.training.console import LayerSummary, NoProfiler, ProgressBar, quiet_console
from cnnbench.training.monitors import DivergenceGuard, Throughput, weights_finite
from cnnbench.training.resume import ResumableCSVLogger, ResumeState, RNGState
from cnnbench.training.trainer import next_version, release_distributed, trainer_extras
from cnnbench.training.wandb import (
    OfflineFallbackWandbLogger,
    WandbSettings,
    make_wandb_logger,
    wandb_credentials_configured,
)

# every name the former module ``cnnbench.training`` exported (kept for one release), and the
# public names of the former modules ``cnnbench.console``, ``cnnbench.train_step``, ``cnnbench.wandb_logger``
__all__ = [
    "AtomicCheckpointIO",
    "CapturedStep",
    "DivergedError",
    "DivergenceGuard",
    "InterruptCheckpoint",
    "LayerSummary",
    "NoProfiler",
    "OfflineFallbackWandbLogger",
    "ProgressBar",
    "RNGState",
    "ResumableCSVLogger",
    "ResumeState",
    "SafeModelCheckpoint",
    "StepEngine",
    "Throughput",
    "WandbSettings",
    "check_step_mode",
    "graph_blocker",
    "make_wandb_logger",
    "next_version",
    "quiet_console",
    "release_distributed",
    "trainer_extras",
    "wandb_credentials_configured",
    "weights_finite",
]
