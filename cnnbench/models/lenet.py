"""LeNet-5 (LeCun, Bottou, Bengio & Haffner, "Gradient-Based Learning Applied to Document
Recognition", Proc. IEEE 1998), in two variants:

* ``lenet5``: the common modern reading (ReLU, max pooling, fully connected C5).
* ``lenet5_classic``: the paper's network, layer by layer, with its parameter counts.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from cnnbench.models.base import ImageClassifier
from cnnbench.models.layers import BackgroundFromData, Conv2d, PadSpec, first_layer_modes, make_conv
from cnnbench.models.pooling import make_pool
from cnnbench.models.registry import register_model

_LENET_RECIPE: dict[str, dict[str, Any]] = {
    "trainer": {"max_epochs": 8},
    "data": {"batch_size": 128, "augment": "standard"},
}


class _BackgroundPadding(BackgroundFromData):
    """``padding_mode="background"``: the first conv pads with the data's normalized blank pixel.

    The value comes from ``background`` when given, else from the data module's mean/std
    when a Trainer sets the model up; checkpoints carry it.
    """

    def _init_background(self, features: nn.Sequential, background: float | list[float] | None) -> None:
        if background is not None:
            first = next((m for m in features.modules() if isinstance(m, Conv2d) and m.background), None)
            if first is None:
                raise ValueError("background is only used with padding_mode='background'")
            first.set_background(background)


@register_model("lenet5")
class LeNet5(_BackgroundPadding, ImageClassifier):
    """The modern LeNet-5: conv 6@5×5 → pool 2 → conv 16@5×5 → pool 2 → fc 120 → 84 → classes.

    ReLU activations and max pooling by default; 61,706 parameters at 32×32×1 and 10
    classes (the count usually quoted for this variant).

    ``head_pool=5`` adds an adaptive average pool to 5×5 before the FC head, the size
    valid padding gives: every padding then has the valid network's 61,706 parameters
    (same padding otherwise has 136,586: its 8×8 map makes the first FC layer 2.2× larger),
    so a padding comparison changes the padding, not the capacity. On the valid network
    it is the identity. ``padding_mode="background"`` pads the first conv with the
    normalized blank pixel instead of 0 (see :class:`~cnnbench.models.layers.Conv2d`);
    ``background`` sets that value (default: from the data module's mean/std).

    Example:
        >>> LeNet5(pool="avg", padding="same")(torch.zeros(1, 1, 32, 32)).shape
        torch.Size([1, 10])
    """

    default_data: ClassVar[str] = "mnist"
    recipe: ClassVar[dict[str, dict[str, Any]]] = _LENET_RECIPE

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 1,
        input_size: int | tuple[int, int] = 32,
        pool: str = "max",
        padding: PadSpec = "valid",
        padding_mode: str = "zeros",
        head_pool: int | None = None,
        background: float | list[float] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if head_pool is not None and (isinstance(head_pool, bool) or not isinstance(head_pool, int) or head_pool < 1):
            raise ValueError(f"head_pool must be a positive integer or None, got {head_pool!r}")
        pad = "valid" if padding == "default" else padding
        first, rest = first_layer_modes(padding_mode)
        self.features = nn.Sequential(
            make_conv(in_channels, 6, 5, padding=pad, padding_mode=first),
            nn.ReLU(inplace=True),
            make_pool(pool, 2, channels=6),
            make_conv(6, 16, 5, padding=pad, padding_mode=rest),
            nn.ReLU(inplace=True),
            make_pool(pool, 2, channels=16),
        )
        if head_pool is not None:
            self.features.append(nn.AdaptiveAvgPool2d(head_pool))
        self._init_background(self.features, background)
        self.classifier = nn.Sequential(
            nn.Linear(self._flat_features(self.features, "lenet5"), 120),
            nn.ReLU(inplace=True),
            nn.Linear(120, 84),
            nn.ReLU(inplace=True),
            nn.Linear(84, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        return self.classifier(torch.flatten(self.features(x), 1))


class ScaledTanh(nn.Module):
    """LeCun's squashing function f(a) = 1.7159 · tanh(2a/3) (paper, Appendix A)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 1.7159 * torch.tanh(x * (2.0 / 3.0))


# Table I of the paper: which S2 maps (rows 0-5 of the paper) feed each C3 map (its columns 0-15);
# entry j lists the S2 maps of C3 map j.
C3_TABLE: tuple[tuple[int, ...], ...] = (
    (0, 1, 2),
    (1, 2, 3),
    (2, 3, 4),
    (3, 4, 5),
    (4, 5, 0),
    (5, 0, 1),
    (0, 1, 2, 3),
    (1, 2, 3, 4),
    (2, 3, 4, 5),
    (3, 4, 5, 0),
    (4, 5, 0, 1),
    (5, 0, 1, 2),
    (0, 1, 3, 4),
    (1, 2, 4, 5),
    (0, 2, 3, 5),
    (0, 1, 2, 3, 4, 5),
)


class PartialConv2d(Conv2d):
    """C3: a convolution in which output map j sees only the input maps ``table[j]``.

    Only the connected kernels are parameters (60·25 weights + 16 biases = 1,516 for the
    paper's table), so the parameter count is the paper's rather than that of a masked
    dense convolution. Padding works as in :class:`~cnnbench.models.layers.Conv2d`.
    """

    def __init__(
        self,
        table: tuple[tuple[int, ...], ...],
        in_channels: int,
        kernel_size: int,
        padding: PadSpec,
        padding_mode: str,
    ) -> None:
        super().__init__(in_channels, len(table), kernel_size, padding=padding, padding_mode=padding_mode)
        out_idx = [j for j, inputs in enumerate(table) for _ in inputs]
        in_idx = [i for inputs in table for i in inputs]
        self.index: torch.Tensor
        self.register_buffer("index", torch.tensor([out_idx, in_idx]), persistent=False)
        # fan-in of map j is |table[j]|·k²; the uniform init uses the average fan-in
        bound = (len(in_idx) / len(table) * kernel_size**2) ** -0.5
        self.weight = nn.Parameter(torch.empty(len(in_idx), kernel_size, kernel_size).uniform_(-bound, bound))
        nn.init.zeros_(self.bias)  # type: ignore[arg-type]

    def dense_weight(self) -> torch.Tensor:
        """The equivalent dense (out, in, k, k) kernel, zero where the table has no link."""
        dense = self.weight.new_zeros(self.out_channels, self.in_channels, *self.kernel_size)
        return dense.index_put((self.index[0], self.index[1]), self.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.convolve(x, self.dense_weight())


class RBFOutput(nn.Module):
    """Euclidean RBF output units over fixed ±1 codes; returns ``-distance`` as logits.

    The paper draws each class code as a 7×12 bitmap; those bitmaps are not published in
    machine-readable form, so the codes here are fixed pseudo-random ±1 vectors (seed 0),
    which keep the property the paper wants: codes far apart, entries at ±1 so F6's
    scaled tanh reaches them without saturating.
    """

    def __init__(self, in_features: int, num_classes: int) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(0)
        codes = torch.randint(0, 2, (num_classes, in_features), generator=gen).float() * 2 - 1
        self.codes: torch.Tensor
        self.register_buffer("codes", codes)  # not trainable: 0 parameters, as in the paper

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # ||x - c||² expanded: one matrix product (cdist's backward is slow on CPU)
        sq = x.pow(2).sum(1, keepdim=True) - 2 * x @ self.codes.T + self.codes.pow(2).sum(1)
        return -sq


@register_model("lenet5_classic")
class LeNet5Classic(_BackgroundPadding, ImageClassifier):
    """LeNet-5 as published in 1998, layer for layer.

    C1 conv 6@5×5 (156 params) → S2 trainable subsampling (12) → C3 partial conv with the
    paper's Table I (1,516) → S4 subsampling (32) → C5 conv 120@5×5 (48,120) → F6 84 units
    (10,164) → RBF output over fixed ±1 codes (0): 60,000 trainable parameters. Every layer
    up to F6 is followed by the scaled tanh ``1.7159·tanh(2x/3)``.

    Loss: the paper's MAP criterion (Eq. 9), ``E = y_D + log(e^{-j} + Σ_i e^{-y_i})`` with
    ``y_i`` the RBF distances: cross-entropy over ``-y`` plus a constant "rubbish" class of
    logit ``-j`` (``rbf_j``, default 10) that keeps the penalties from collapsing.

    Example:
        >>> LeNet5Classic()(torch.zeros(1, 1, 32, 32)).shape
        torch.Size([1, 10])
    """

    default_data: ClassVar[str] = "mnist"
    recipe: ClassVar[dict[str, dict[str, Any]]] = _LENET_RECIPE

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 1,
        input_size: int | tuple[int, int] = 32,
        pool: str = "subsample",
        padding: PadSpec = "valid",
        padding_mode: str = "zeros",
        rbf_j: float = 10.0,
        background: float | list[float] | None = None,
        optimizer: str = "adam",
        lr: float = 0.003,
        weight_decay: float = 0.0,
        **kwargs: Any,
    ) -> None:
        # the RBF penalties are sums over 84 units: Adam's scale-free steps suit them
        super().__init__(optimizer=optimizer, lr=lr, weight_decay=weight_decay, **kwargs)
        padding = "valid" if padding == "default" else padding
        first, rest = first_layer_modes(padding_mode)
        conv = {"padding": padding, "padding_mode": rest}
        c3_table = C3_TABLE if in_channels == 1 else tuple(tuple(range(6)) for _ in range(16))
        self.features = nn.Sequential(
            make_conv(in_channels, 6, 5, padding=padding, padding_mode=first),  # C1
            ScaledTanh(),
            make_pool(pool, 2, channels=6),  # S2
            ScaledTanh(),
            PartialConv2d(c3_table, 6, 5, padding, rest),  # C3
            ScaledTanh(),
            make_pool(pool, 2, channels=16),  # S4
            ScaledTanh(),
            make_conv(16, 120, 5, **conv),  # type: ignore[arg-type]  # C5
            ScaledTanh(),
        )
        self.classifier = nn.Sequential(
            nn.Linear(self._flat_features(self.features, "lenet5_classic"), 84),  # F6
            ScaledTanh(),
            RBFOutput(84, num_classes),
        )
        self._init_background(self.features, background)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        return self.classifier(torch.flatten(self.features(x), 1))

    def loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        rubbish = logits.new_full((logits.shape[0], 1), -float(self.hparams["rbf_j"]))
        return nn.functional.cross_entropy(torch.cat([logits, rubbish], dim=1), target)
