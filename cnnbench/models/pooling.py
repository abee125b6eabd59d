"""The pooling operators a model's ``pool=`` knob picks, and the one table that names them.

:data:`POOLS` maps each kind of :data:`cnnbench.core.vocab.POOL_KINDS` (the vocabulary's one
definition) to its layer class: :func:`make_pool` builds from it and :func:`pool_name` (the
``pool`` column of the layer summary) reads it backwards, so the names cannot drift apart.

Example:
    >>> import torch
    >>> pool = make_pool("min", 2)
    >>> pool(torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])).item()
    1.0
    >>> pool_name(pool)
    'min'
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cnnbench.core.choices import check_choice
from cnnbench.core.vocab import POOL_KINDS
from cnnbench.models.geometry import Window, pair


class MinPool2d(nn.MaxPool2d):
    """Min pooling, exactly ``-max_pool(-x)``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return -super().forward(-x)


class PowerAvgPool2d(nn.AvgPool2d):
    """Power-average (Lp) pooling: ``(mean(|x|^p))^(1/p)`` over each window.

    Unlike ``nn.LPPool2d`` (a power *sum*), this keeps the scale of the input, so it sits
    between average (p=1) and max (p→∞) pooling.
    """

    def __init__(self, kernel_size: int, stride: int, p: float = 2.0, eps: float = 1e-12) -> None:
        super().__init__(kernel_size, stride)
        self.p, self.eps = p, eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # eps keeps the gradient of the root finite where a whole window is zero (after ReLU)
        return (super().forward(x.abs().pow(self.p)) + self.eps).pow(1.0 / self.p)


class BlurMaxPool2d(nn.Module):
    """Anti-aliased max pooling (Zhang, "Making Convolutional Networks Shift-Invariant
    Again", ICML 2019): max at stride 1, then a fixed binomial [1, 2, 1] blur applied at
    the stride. Output size equals that of ``MaxPool2d(kernel_size, stride)``."""

    def __init__(self, kernel_size: int, stride: int) -> None:
        super().__init__()
        self.kernel_size, self.stride = kernel_size, stride
        taps = torch.tensor([1.0, 2.0, 1.0])
        self.filt: torch.Tensor
        self.register_buffer("filt", (taps[:, None] * taps[None, :] / 16.0)[None, None], persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(x, self.kernel_size, 1)
        # reflect as in Zhang's code; a 1-pixel map cannot reflect, and replicate equals it there
        x = F.pad(x, (1, 1, 1, 1), mode="reflect" if min(x.shape[-2:]) > 1 else "replicate")
        filt = self.filt.to(x.dtype).expand(x.shape[1], 1, 3, 3)
        return F.conv2d(x, filt, stride=self.stride, groups=x.shape[1])

    def sliding_windows(self, h: int, w: int) -> list[Window]:
        """The max at stride 1, then the 3×3 blur (padded by 1) at the stride."""
        k, s = pair(self.kernel_size), pair(self.stride)
        return [Window(k, (1, 1), (1, 1), (0, 0, 0, 0)), Window((3, 3), s, (1, 1), (1, 1, 1, 1))]


class ConvPool2d(nn.Conv2d):
    """A learnable strided convolution in place of a pool ("all-convolutional" nets)."""

    def __init__(self, channels: int, kernel_size: int, stride: int) -> None:
        super().__init__(channels, channels, kernel_size, stride)


class Subsample2d(nn.AvgPool2d):
    """LeCun's trainable subsampling (1998): window average × coefficient + bias, per map."""

    def __init__(self, channels: int, kernel_size: int, stride: int) -> None:
        super().__init__(kernel_size, stride)
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x) * self.weight[:, None, None] + self.bias[:, None, None]


class Decimate2d(nn.Module):
    """No pooling, only the downsampling: keep one pixel per window, ``x[..., ::s, ::s]``.

    The control for "does the aggregation matter or just the stride?": it keeps the
    top-left pixel of every window a ``kernel_size``/``stride`` pool would use, so its
    output has the pool's size (for even sizes exactly ``x[..., ::2, ::2]``).
    """

    def __init__(self, kernel_size: int, stride: int) -> None:
        super().__init__()
        self.kernel_size, self.stride = kernel_size, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k, s = self.kernel_size, self.stride
        h, w = (x.shape[-2] - k) // s * s + 1, (x.shape[-1] - k) // s * s + 1
        return x[..., :h:s, :w:s]

    def sliding_windows(self, h: int, w: int) -> list[Window]:
        """The window whose top-left pixel is kept."""
        return [Window(pair(self.kernel_size), pair(self.stride), (1, 1), (0, 0, 0, 0))]

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}"


POOLS: dict[str, type[nn.Module]] = {
    "max": nn.MaxPool2d,
    "avg": nn.AvgPool2d,
    "min": MinPool2d,
    "lp": PowerAvgPool2d,
    "blur": BlurMaxPool2d,
    "conv": ConvPool2d,
    "subsample": Subsample2d,
    "decimate": Decimate2d,
}
"""Pool kind → layer class: the one table :func:`make_pool` and :func:`pool_name` read."""

#: the pools with parameters, built as ``cls(channels, kernel_size, stride)``
LEARNED_POOLS: frozenset[type[nn.Module]] = frozenset({ConvPool2d, Subsample2d})

_KIND_OF: dict[type[nn.Module], str] = {cls: kind for kind, cls in POOLS.items()}


def make_pool(kind: str, kernel_size: int, stride: int | None = None, channels: int | None = None) -> nn.Module:
    """Build a pooling layer by name.

    Args:
        kind: One of ``max``, ``avg``, ``min``, ``lp`` (power average, p=2), ``blur``
            (anti-aliased max), ``conv`` (learnable strided conv), ``subsample``
            (LeCun's trainable average), ``decimate`` (no aggregation: stride-2 slicing).
        kernel_size: Window size.
        stride: Step; defaults to ``kernel_size``.
        channels: Number of feature maps; required by ``conv`` and ``subsample``.

    Example:
        >>> make_pool("avg", 2)
        AvgPool2d(kernel_size=2, stride=2, padding=0)
    """
    check_choice(kind, POOL_KINDS, "pool")
    cls, s = POOLS[kind], kernel_size if stride is None else stride
    if cls not in LEARNED_POOLS:
        return cls(kernel_size, s)
    if channels is None:
        raise ValueError(f"pool={kind!r} has parameters and needs `channels`")
    return cls(channels, kernel_size, s)


def pool_name(module: nn.Module) -> str:
    """The pool kind of ``module`` (the nearest class in :data:`POOLS` up its class tree), or ``""``.

    Example:
        >>> pool_name(make_pool("subsample", 2, channels=6)), pool_name(nn.ReLU())
        ('subsample', '')
    """
    for cls in type(module).__mro__:
        if cls in _KIND_OF:
            return _KIND_OF[cls]
    return ""
