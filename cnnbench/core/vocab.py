"""Each ablation knob's vocabulary, defined once as a ``Literal`` alias.

Everything else derives from these: constructors validate with
:func:`cnnbench.core.choices.check_choice`, ``--help`` lists the choices (jsonargparse reads the
``Literal`` annotations), error hints, layer-summary names and the report's reference levels.
Adding a pooling operator is one edit here plus its factory entry in
:mod:`cnnbench.models.pooling` (a test checks that the two agree).

Example:
    >>> from cnnbench.core.vocab import PADDINGS, choices
    >>> PADDINGS
    ('valid', 'same', 'full')
    >>> choices(PoolKind)[:2]
    ('max', 'avg')
"""

from __future__ import annotations

from typing import Any, Literal, get_args

PoolKind = Literal["max", "avg", "min", "lp", "blur", "conv", "subsample", "decimate"]
"""Downsampling operators: max, average, min, power average (p=2), blur-then-max (Zhang 2019),
learned stride-2 convolution (Springenberg 2015), LeCun's trainable subsampling, plain decimation."""

Padding = Literal["valid", "same", "full"]
"""How much a convolution pads: none, enough to keep the size (stride 1), or kernel - 1 a side."""

PaddingMode = Literal["zeros", "reflect", "replicate", "circular", "background"]
"""What the padding is filled with; ``background`` fills the first layer with the data's
normalised black (the value an empty border has), the others are torch's modes."""

Precision = Literal["32-true", "32", "64-true", "16-mixed", "bf16-mixed", "16-true", "bf16-true", "transformer-engine"]
"""Lightning's precision plugins."""

StepMode = Literal["auto", "graph", "eager"]
"""How a training step runs: captured in a CUDA graph, eagerly, or graph where it can."""

OptimizerName = Literal["sgd", "adam", "adamw"]
SchedulerName = Literal["onecycle", "cosine", "none"]
LoaderName = Literal["tensor", "torchvision"]
"""``tensor``: the whole split held as a uint8 tensor, augmented a batch at a time (the fast path);
``torchvision``: per-sample transforms in DataLoader workers (the classic path)."""

LinkedArgument = Literal["num_classes", "in_channels", "input_size"]
"""The model arguments the data module decides (see :func:`cnnbench.data.link.model_link`)."""


def choices(alias: Any) -> tuple[str, ...]:
    """The values of a ``Literal`` alias, in the order they are declared."""
    return tuple(get_args(alias))


POOL_KINDS = choices(PoolKind)
PADDINGS = choices(Padding)
PADDING_MODES = choices(PaddingMode)
PRECISIONS = choices(Precision)
STEP_MODES = choices(StepMode)
OPTIMIZERS = choices(OptimizerName)
SCHEDULERS = choices(SchedulerName)
LOADERS = choices(LoaderName)
LINKED_ARGUMENTS = choices(LinkedArgument)

VOCABULARIES: dict[str, tuple[str, ...]] = {
    "pool": POOL_KINDS,
    "padding": PADDINGS,
    "padding_mode": PADDING_MODES,
    "precision": PRECISIONS,
    "step_mode": STEP_MODES,
    "optimizer": OPTIMIZERS,
    "scheduler": SCHEDULERS,
    "loader": LOADERS,
}
"""Argument name → its vocabulary, for code that sees only the name (``--help``, error hints)."""
