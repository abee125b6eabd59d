"""Models: a registry of LightningModules and the layers they are built from.

One concern a file:

* ``registry.py``: ``register_model``, ``create_model``, ``list_models`` (and third-party entry points).
* ``base.py``: :class:`ImageClassifier`, the LightningModule every model derives from (loss,
  metrics, optimizer, schedule); ``input_check.py``: its one-line errors for a batch of the wrong shape.
* ``lenet.py``, ``alexnet.py``: one file per model family; ``plugin.py``: any ``nn.Module`` as a model.
* ``layers.py``: convolutions with string padding rules; ``pooling.py``: the pools and the one
  kind → class table; ``geometry.py``: shape inference without running a layer.
* ``summary.py``: per-layer shapes, parameters, multiply-accumulates, receptive fields.

The checkpoint format (metadata, loading) is not here: :mod:`cnnbench.checkpoint`, a layer above.

Example:
    >>> from cnnbench.models import create_model
    >>> create_model("lenet5", pool="avg").hparams.pool
    'avg'
"""

# registers the built-in models; plugin sets the registry's adapt (before any lookup, which comes after this)
from cnnbench.models import alexnet, lenet, plugin  # noqa: F401
from cnnbench.models.alexnet import PretrainedWeightsError
from cnnbench.models.base import DivergedError, ImageClassifier
from cnnbench.models.geometry import GeometryError, InputShapeError
from cnnbench.models.layers import make_conv
from cnnbench.models.pooling import make_pool
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
