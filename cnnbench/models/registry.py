"""The model registry: ``register_model``, ``create_model``, ``list_models``.

Third-party packages add models through the entry-point group ``cnnbench.models``::

    [project.entry-points."cnnbench.models"]
    my_net = "my_package.models:MyNet"

An entry (or a class path such as ``mypkg.MyNet``) may be an :class:`ImageClassifier`
subclass, or any ``nn.Module`` class or builder function taking ``num_classes``: the
latter is wrapped into one with the default recipe (:mod:`cnnbench.models.plugin`).

Example:
    >>> from cnnbench.models import create_model, list_models
    >>> list_models("lenet*")
    ['lenet5', 'lenet5_classic']
    >>> type(create_model("lenet5", pool="avg")).__name__
    'LeNet5'
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cnnbench.core.registry import Registry

#: the registry; :mod:`cnnbench.models.plugin` sets its ``adapt`` (ImageClassifier subclasses as they
#: are, anything else wrapped into one) when the package is imported, so that this module, which the
#: base class reads names from, imports no model code
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
    _check_required(name, MODELS.get(name), kwargs)
    model = MODELS.create(name, **kwargs)
    if pretrained:
        model.load_pretrained()
    return model


def _check_required(name: str, entry: Callable[..., Any], kwargs: dict[str, Any]) -> None:
    """One line naming the arguments without a default that ``kwargs`` does not give (a
    plugin such as ``torchvision.models.ResNet`` needs ``block`` and ``layers``)."""
    import inspect

    try:
        params = inspect.signature(entry).parameters.values()
    except (TypeError, ValueError):
        return
    missing = [
        p.name
        for p in params
        if p.default is p.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and kwargs.get(p.name) is None
    ]
    if missing:
        flags = ", ".join(f"--model.{m}" for m in missing)
        raise ValueError(f"model {name!r} needs argument(s) {', '.join(missing)} (CLI: {flags}; grid: models[].args)")


def list_models(pattern: str = "*") -> list[str]:
    """Sorted names of the registered models matching an fnmatch ``pattern``."""
    return MODELS.names(pattern)
