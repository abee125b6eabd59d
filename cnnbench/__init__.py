"""cnnbench: train classic CNNs and measure what pooling and padding do to them.

``import cnnbench`` is cheap: torch, Lightning and W&B are imported on first use of the
names below.

Example:
    >>> import cnnbench
    >>> model = cnnbench.create_model("lenet5", pool="avg", padding="same")
    >>> "alexnet_cifar" in cnnbench.list_models()
    True
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "register_model": "cnnbench.models.registry",
    "create_model": "cnnbench.models.registry",
    "list_models": "cnnbench.models.registry",
    "summarize": "cnnbench.models.summary",
    "GeometryError": "cnnbench.models.geometry",
    "DivergedError": "cnnbench.models.base",
    "ImageClassifier": "cnnbench.models.base",
    "register_data": "cnnbench.data.registry",
    "create_data": "cnnbench.data.registry",
    "list_data": "cnnbench.data.registry",
    "DataError": "cnnbench.data.files",
    "load_from_checkpoint": "cnnbench.checkpoint",
    "CheckpointError": "cnnbench.checkpoint",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'cnnbench' has no attribute {name!r}")
    if _LAZY[name] == "cnnbench.models.registry":
        import_module("cnnbench.models")  # registers the built-in models
    if _LAZY[name] == "cnnbench.data.registry":
        import_module("cnnbench.data")
    if name == "ImageClassifier":  # its base-class load_from_checkpoint reads files through cnnbench.checkpoint
        import_module("cnnbench.checkpoint")
    value = getattr(import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
