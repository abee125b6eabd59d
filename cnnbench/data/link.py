"""The model ↔ data link, coded once: which model arguments a data module decides.

``cnnbench fit`` (through LightningCLI's ``link_arguments``), ``cnnbench summary``, the grid's
cells and plugin models all build a model for a data module with these values, so a model is
always built for the images it will see.

Example:
    >>> from cnnbench.data import SyntheticDataModule
    >>> model_link(SyntheticDataModule(size=28, channels=3, classes=4))
    {'num_classes': 4, 'in_channels': 3, 'input_size': 28}
"""

from __future__ import annotations

from typing import Any

from cnnbench.core.vocab import LINKED_ARGUMENTS


def num_classes(data: Any) -> int:
    """The model's ``num_classes`` for a data module."""
    return int(data.num_classes)


def in_channels(data: Any) -> int:
    """The model's ``in_channels`` for a data module: the channels of the images it yields."""
    return int(data.image_shape[0])


def input_size(data: Any) -> int | list[int]:
    """The model's ``input_size`` for a data module: an int for square images, else ``[h, w]``."""
    _, h, w = data.image_shape
    return int(h) if h == w else [int(h), int(w)]


LINK: dict[str, Any] = {"num_classes": num_classes, "in_channels": in_channels, "input_size": input_size}
assert tuple(LINK) == LINKED_ARGUMENTS


def model_link(data: Any) -> dict[str, Any]:
    """``{num_classes, in_channels, input_size}`` for a data module (see the module docstring)."""
    return {name: compute(data) for name, compute in LINK.items()}
