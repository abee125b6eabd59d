"""AlexNet (Krizhevsky, Sutskever & Hinton, "ImageNet Classification with Deep
Convolutional Neural Networks", NeurIPS 2012) in three variants:

* ``alexnet``: torchvision's model (Krizhevsky 2014, "One weird trick..."), weight-compatible
  (``create_model("alexnet", pretrained=True)`` loads torchvision's ImageNet weights).
* ``alexnet2012``: the 2012 paper's layers, LRN and two-GPU grouping included.
* ``alexnet_cifar``: an AlexNet for 32×32 images.

``padding="default"`` keeps each variant's reference per-layer padding; ``valid``,
``same``, ``full`` or an int apply one rule to every convolution. ``alexnet`` and
``alexnet2012`` train on CIFAR-10 out of the box: their recipes resize the 32×32 images
to 224 / 227 on the device (``--data.image_size``).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from cnnbench.models.base import ImageClassifier
from cnnbench.models.geometry import GeometryError
from cnnbench.models.layers import BackgroundFromData, PadSpec, first_layer_modes, make_conv
from cnnbench.models.pooling import make_pool
from cnnbench.models.registry import register_model

_ALEXNET_RECIPE: dict[str, dict[str, Any]] = {
    "trainer": {"max_epochs": 30},
    "data": {"batch_size": 128, "augment": "standard"},
}


def _resizing_recipe(size: int) -> dict[str, dict[str, Any]]:
    """The AlexNet recipe with the data resized to ``size`` on the device (CIFAR's 32 is too small)."""
    return {**_ALEXNET_RECIPE, "data": {**_ALEXNET_RECIPE["data"], "image_size": size}}


_SMALL_IMAGES = (
    "for 32×32 images use the model alexnet_cifar, or resize them on the device with --data.image_size {size}"
)


class PretrainedWeightsError(RuntimeError):
    """Pretrained weights could not be obtained or do not fit the model."""


def _conv_stack(
    in_channels: int,
    plan: list[tuple[int, int, int, int, int] | str],
    pool: str,
    padding: PadSpec,
    padding_mode: str,
    lrn_after: tuple[int, ...] = (),
) -> nn.Sequential:
    """Build conv/ReLU/pool layers from a plan.

    ``plan`` holds ``(out_channels, kernel, stride, default_padding, groups)`` for a
    convolution (followed by ReLU, and by LRN if its index is in ``lrn_after``) and the
    string ``"pool"`` for a 3×3/2 pool (``"pool2"`` for 2×2/2).
    """
    layers: list[nn.Module] = []
    channels, conv_index = in_channels, 0
    for step in plan:
        if isinstance(step, str):
            k = 2 if step == "pool2" else 3
            layers.append(make_pool(pool, k, 2, channels=channels))
            continue
        out, k, s, default_pad, groups = step
        pad = default_pad if padding == "default" else padding
        mode = first_layer_modes(padding_mode)[0 if conv_index == 0 else 1]  # background: the first conv only
        layers += [make_conv(channels, out, k, s, pad, mode, groups=groups), nn.ReLU(inplace=True)]
        if conv_index in lrn_after:
            # PyTorch's LRN divides alpha by n, so n·1e-4 here is the paper's alpha = 1e-4
            layers.append(nn.LocalResponseNorm(size=5, alpha=5 * 1e-4, beta=0.75, k=2.0))
        channels, conv_index = out, conv_index + 1
    return nn.Sequential(*layers)


def _mlp_head(in_features: int, hidden: int, num_classes: int, dropout: float) -> nn.Sequential:
    # same layout (and so state-dict keys) as torchvision's AlexNet classifier
    return nn.Sequential(
        nn.Dropout(p=dropout),
        nn.Linear(in_features, hidden),
        nn.ReLU(inplace=True),
        nn.Dropout(p=dropout),
        nn.Linear(hidden, hidden),
        nn.ReLU(inplace=True),
        nn.Linear(hidden, num_classes),
    )


class _AlexNetBase(BackgroundFromData, ImageClassifier):
    default_data: ClassVar[str] = "cifar10"
    recipe: ClassVar[dict[str, dict[str, Any]]] = _ALEXNET_RECIPE

    features: nn.Sequential
    avgpool: nn.Module
    classifier: nn.Sequential

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))

    def _checked_features(self, name: str, reference_size: int) -> int:
        """Flattened size after ``features``; a too-small input names alexnet_cifar and the resize option."""
        try:
            return self._flat_features(self.features, name)
        except GeometryError as err:
            hint = _SMALL_IMAGES.format(size=reference_size)
            raise GeometryError(f"{err} {hint[0].upper()}{hint[1:]}.") from None


@register_model("alexnet")
class AlexNet(_AlexNetBase):
    """torchvision's AlexNet (the "one weird trick" variant, 64-192-384-256-256 filters).

    Its ``state_dict()`` loads with ``strict=True`` into ``torchvision.models.alexnet``
    and back; 61,100,840 parameters at 1000 classes and 224×224.

    Example:
        >>> AlexNet(num_classes=10, input_size=64)(torch.zeros(1, 3, 64, 64)).shape
        torch.Size([1, 10])
    """

    recipe: ClassVar[dict[str, dict[str, Any]]] = _resizing_recipe(224)
    input_hint: ClassVar[str] = _SMALL_IMAGES.format(size=224)
    flexible_input: ClassVar[bool] = True  # the adaptive pool takes any size the convolutions fit
    #: torchvision weights enum member loaded by ``create_model("alexnet", pretrained=True)``
    pretrained_weights: ClassVar[str] = "AlexNet_Weights.IMAGENET1K_V1"

    def __init__(
        self,
        num_classes: int = 1000,
        in_channels: int = 3,
        input_size: int | tuple[int, int] = 224,
        pool: str = "max",
        padding: PadSpec = "default",
        padding_mode: str = "zeros",
        dropout: float = 0.5,
        lr: float = 0.01,
        **kwargs: Any,
    ) -> None:
        super().__init__(lr=lr, **kwargs)
        plan: list[Any] = [(64, 11, 4, 2, 1), "pool", (192, 5, 1, 2, 1), "pool"]
        plan += [(384, 3, 1, 1, 1), (256, 3, 1, 1, 1), (256, 3, 1, 1, 1), "pool"]
        self.features = _conv_stack(in_channels, plan, pool, padding, padding_mode)
        self._checked_features("alexnet", 224)  # geometry check only
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = _mlp_head(256 * 6 * 6, 4096, num_classes, dropout)

    def load_pretrained(self) -> None:
        """Load torchvision's ImageNet weights (``AlexNet_Weights.IMAGENET1K_V1``) through
        torchvision's weights API (torch hub's cache: ``$TORCH_HOME/hub/checkpoints``).

        Every layer is loaded strictly; with ``num_classes != 1000`` the last dense layer
        keeps its fresh initialization (fine-tuning). Failures are one line.
        """
        from torchvision import models

        enum_name, member = self.pretrained_weights.split(".")
        weights = getattr(getattr(models, enum_name), member)
        try:
            state = weights.get_state_dict(progress=False, check_hash=True)
        except Exception as err:
            filename = weights.url.rsplit("/", 1)[-1]
            raise PretrainedWeightsError(
                f"could not get torchvision's {self.pretrained_weights} ({type(err).__name__}: {str(err)[:120]}); "
                f"download {weights.url} into {torch.hub.get_dir()}/checkpoints/{filename} (or set $TORCH_HOME)"
            ) from None
        head = ("classifier.6.weight", "classifier.6.bias")
        if self.hparams["num_classes"] != 1000:
            state = {k: v for k, v in state.items() if k not in head}
        try:
            missing, unexpected = self.load_state_dict(state, strict=False)
        except RuntimeError as err:  # a shape mismatch (in_channels, pool="conv" ...)
            first = str(err).split("\n")[1].strip() if "\n" in str(err) else str(err)
            raise PretrainedWeightsError(f"{self.pretrained_weights} does not fit this alexnet: {first}") from None
        missing = [k for k in missing if k not in head or self.hparams["num_classes"] == 1000]
        if missing or unexpected:
            raise PretrainedWeightsError(
                f"{self.pretrained_weights} does not fit this alexnet (pool={self.hparams['pool']!r}): "
                f"missing {missing[:3]}, unexpected {unexpected[:3]}; pretrained weights need the default layers"
            )


@register_model("alexnet2012")
class AlexNet2012(_AlexNetBase):
    """The 2012 paper's AlexNet: 96-256-384-384-256 filters, 227×227 input.

    Local response normalization (k=2, n=5, α=1e-4, β=0.75) after conv1 and conv2,
    overlapping 3×3/2 max pooling, dropout 0.5, and the two-GPU split as ``groups=2`` in
    conv2, conv4 and conv5 (conv3 and the dense layers see both halves).
    60,965,224 parameters at 1000 classes.

    Example:
        >>> AlexNet2012(num_classes=10, input_size=99)(torch.zeros(1, 3, 99, 99)).shape
        torch.Size([1, 10])
    """

    recipe: ClassVar[dict[str, dict[str, Any]]] = _resizing_recipe(227)
    input_hint: ClassVar[str] = _SMALL_IMAGES.format(size=227)

    def __init__(
        self,
        num_classes: int = 1000,
        in_channels: int = 3,
        input_size: int | tuple[int, int] = 227,
        pool: str = "max",
        padding: PadSpec = "default",
        padding_mode: str = "zeros",
        dropout: float = 0.5,
        lr: float = 0.01,
        **kwargs: Any,
    ) -> None:
        super().__init__(lr=lr, **kwargs)
        plan: list[Any] = [(96, 11, 4, 0, 1), "pool", (256, 5, 1, 2, 2), "pool"]
        plan += [(384, 3, 1, 1, 1), (384, 3, 1, 1, 2), (256, 3, 1, 1, 2), "pool"]
        self.features = _conv_stack(in_channels, plan, pool, padding, padding_mode, lrn_after=(0, 1))
        self.avgpool = nn.Identity()
        self.classifier = _mlp_head(self._checked_features("alexnet2012", 227), 4096, num_classes, dropout)


@register_model("alexnet_cifar")
class AlexNetCIFAR(_AlexNetBase):
    """AlexNet for 32×32 images (CIFAR-10/100).

    Same five convolutions as torchvision's AlexNet (64-192-384-256-256) with the
    changes a 32×32 input forces, each so that both ``valid`` and ``same`` padding fit:
    a 3×3 stride-1 stem instead of 11×11/4 (a stride-4 stem would leave 8×8 maps after
    one layer); two 2×2/2 pools, after conv1 and conv3, instead of three 3×3/2 pools (with
    valid padding three pools leave no room for conv5); an adaptive average pool to 2×2
    before the classifier (as torchvision's to 6×6); and 1024-unit dense layers.
    ``padding="default"`` is ``same``: 32→16→8 maps.

    Example:
        >>> AlexNetCIFAR(padding="valid")(torch.zeros(1, 3, 32, 32)).shape
        torch.Size([1, 10])
    """

    flexible_input: ClassVar[bool] = True  # the adaptive pool takes any size the convolutions fit

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 3,
        input_size: int | tuple[int, int] = 32,
        pool: str = "max",
        padding: PadSpec = "default",
        padding_mode: str = "zeros",
        dropout: float = 0.5,
        hidden: int = 1024,
        lr: float = 0.02,
        **kwargs: Any,
    ) -> None:
        super().__init__(lr=lr, **kwargs)
        plan: list[Any] = [(64, 3, 1, "same", 1), "pool2", (192, 3, 1, "same", 1)]
        plan += [(384, 3, 1, "same", 1), "pool2", (256, 3, 1, "same", 1), (256, 3, 1, "same", 1)]
        self.features = _conv_stack(in_channels, plan, pool, padding, padding_mode)
        self._flat_features(self.features, "alexnet_cifar")  # geometry check only
        self.avgpool = nn.AdaptiveAvgPool2d((2, 2))
        self.classifier = _mlp_head(256 * 2 * 2, hidden, num_classes, dropout)
