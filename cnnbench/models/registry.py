"""The model registry: ``register_model``, ``create_model``, ``list_models``.

Third-party packages add models through the entry-point group ``cnnbench.models``::

    [project.entry-points."cnnbench.models"]
    my_net = "my_package.models:MyNet"

Example:
    >>> from cnnbench.models import create_model, list_models
    >>> list_models("lenet*")
    ['lenet5', 'lenet5_classic']
    >>> type(create_model("lenet5", pool="avg")).__name__
    'LeNet5'
"""

from __future__ import annotations

from typing import Any

from cnnbench.registry import Registry

MODELS = Registry("model", entry_point_group="cnnbench.models")
register_model = MODELS.register


def create_model(name: str, **kwargs: Any) -> Any:
    """Build the model registered as ``name``; ``None`` keyword arguments are dropped.

    Raises:
        ValueError: For an unknown name (with the closest registered names) or an
            invalid configuration (unknown pool/padding, impossible geometry).
    """
    return MODELS.create(name, **kwargs)


def list_models(pattern: str = "*") -> list[str]:
    """Sorted names of the registered models matching an fnmatch ``pattern``."""
    return MODELS.names(pattern)
