"""Models: a registry of LightningModules and the layers they are built from."""

from cnnbench.models import alexnet, lenet  # noqa: F401  (registers the built-in models)
from cnnbench.models.alexnet import PretrainedWeightsError
from cnnbench.models.base import DivergedError, ImageClassifier
from cnnbench.models.layers import GeometryError, InputShapeError, make_conv, make_pool
from cnnbench.models.registry import MODELS, create_model, list_models, register_model
from cnnbench.models.summary import LayerRow, summarize

__all__ = [
    "MODELS",
    "DivergedError",
    "GeometryError",
    "ImageClassifier",
    "InputShapeError",
    "LayerRow",
    "PretrainedWeightsError",
    "create_model",
    "list_models",
    "make_conv",
    "make_pool",
    "register_model",
    "summarize",
]
