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


def create_model(name: str, pretrained: bool = False, **kwargs: Any) -> Any:
    """Build the model registered as ``name``; ``None`` keyword arguments are dropped.

    Args:
        name: Registry name (``list_models()``).
        pretrained: Load the model's published weights (``alexnet``: torchvision's
            ImageNet weights, through torchvision's weights API and torch hub's cache;
            with ``num_classes != 1000`` the last layer stays freshly initialized).
        **kwargs: The model's arguments (``pool``, ``padding``, ``num_classes`` ...).

    Raises:
        ValueError: For an unknown name or keyword argument (with the closest valid
            names), a model without pretrained weights, or an invalid configuration
            (unknown pool/padding, impossible geometry).
    """
    if pretrained:
        with_weights = [n for n in list_models() if getattr(MODELS.get(n), "pretrained_weights", None)]
        if getattr(MODELS.get(name), "pretrained_weights", None) is None:
            raise ValueError(
                f"model {name!r} has no pretrained weights; models with weights: {', '.join(with_weights) or 'none'}"
            )
    model = MODELS.create(name, **kwargs)
    if pretrained:
        model.load_pretrained()
    return model


def list_models(pattern: str = "*") -> list[str]:
    """Sorted names of the registered models matching an fnmatch ``pattern``."""
    return MODELS.names(pattern)
