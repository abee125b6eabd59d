"""Shape inference without running a layer: sliding windows, output sizes, strides.

Every layer that slides a window over its input is described by :class:`Window` s: torch's own
convolutions and pools by their attributes, cnnbench's layers by their ``sliding_windows(h, w)``
method (:class:`~cnnbench.models.layers.Conv2d` with run-time ``same`` padding, the blur and
decimation pools). :func:`infer_shapes` walks a stack of layers at construction time, so a
geometry that cannot work (a feature map shrunk below a kernel) is reported before any data is
touched; the layer summary and :func:`total_stride` read the same windows.

Example:
    >>> from torch import nn
    >>> infer_shapes(nn.Sequential(nn.Conv2d(1, 6, 5), nn.MaxPool2d(2)), (1, 32, 32))
    [(6, 28, 28), (6, 14, 14)]
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from torch import nn


class GeometryError(ValueError):
    """A layer configuration that cannot work for the given input size."""


class InputShapeError(ValueError):
    """A batch whose shape the model cannot take (named with the expected shape)."""


def format_shape(shape: Iterable[int]) -> str:
    """``(1, 32, 32)`` → ``"1×32×32"``."""
    return "×".join(str(int(d)) for d in shape)


def pair(v: int | tuple[int, ...]) -> tuple[int, int]:
    """``3`` → ``(3, 3)``; a pair as ints."""
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


def same_padding(n: int, k: int, s: int, d: int = 1) -> tuple[int, int]:
    """TensorFlow-style ``same`` padding (before, after) so that out = ceil(n / s).

    Example:
        >>> same_padding(32, 4, 2)
        (1, 1)
    """
    total = max((math.ceil(n / s) - 1) * s + (k - 1) * d + 1 - n, 0)
    return total // 2, total - total // 2


def conv_output_size(n: int, k: int, s: int, pad_total: int, d: int = 1) -> int:
    """floor((n + pad_total - d·(k-1) - 1) / s) + 1, the usual sliding-window formula."""
    return (n + pad_total - d * (k - 1) - 1) // s + 1


@dataclass(frozen=True)
class Window:
    """One sliding-window operation: what shape inference and receptive fields need."""

    kernel: tuple[int, int]
    stride: tuple[int, int]
    dilation: tuple[int, int]
    padding: tuple[int, int, int, int]  # top, bottom, left, right


def windows(module: nn.Module, h: int, w: int) -> list[Window]:
    """The sliding windows ``module`` applies to an ``h``×``w`` map (empty for pointwise layers)."""
    own = getattr(module, "sliding_windows", None)
    if callable(own):
        return own(h, w)  # type: ignore[no-any-return]
    if isinstance(module, nn.Conv2d):
        ph, pw = pair(module.padding)  # type: ignore[arg-type]
        return [Window(pair(module.kernel_size), pair(module.stride), pair(module.dilation), (ph, ph, pw, pw))]
    if isinstance(module, nn.MaxPool2d | nn.AvgPool2d | nn.LPPool2d):
        k = pair(module.kernel_size)  # type: ignore[arg-type]
        s = pair(module.stride or module.kernel_size)  # type: ignore[arg-type]
        ph, pw = pair(getattr(module, "padding", 0))
        d = pair(getattr(module, "dilation", 1))
        return [Window(k, s, d, (ph, ph, pw, pw))]
    return []


def total_stride(layers: nn.Module, h: int = 32, w: int = 32) -> int:
    """The product of the strides of every sliding window in ``layers`` (rows; 4 for LeNet-5).

    A shift by a multiple of it moves the last feature map by whole pixels; smaller shifts
    fall between its samples, which is where the pooling operator can matter.

    Example:
        >>> total_stride(nn.Sequential(nn.Conv2d(1, 6, 5), nn.MaxPool2d(2), nn.Conv2d(6, 16, 5), nn.MaxPool2d(2)))
        4
    """
    stride = 1
    for module in layers.modules():
        for win in windows(module, h, w):
            stride *= win.stride[0]
    return stride


def out_channels(module: nn.Module, channels: int) -> int:
    """Channel count after ``module`` (unchanged for pools and pointwise layers)."""
    return int(getattr(module, "out_channels", channels))


def infer_shapes(
    layers: nn.Sequential, in_shape: tuple[int, int, int], where: str = "features"
) -> list[tuple[int, int, int]]:
    """Output (C, H, W) after each layer of ``layers``, computed without running them.

    Raises:
        GeometryError: When a layer's window does not fit in its (padded) input, naming
            the layer, its input size and its kernel.
    """
    c, h, w = in_shape
    shapes = []
    for name, module in layers.named_children():
        if isinstance(module, nn.AdaptiveAvgPool2d | nn.AdaptiveMaxPool2d):
            h, w = pair(module.output_size)  # type: ignore[arg-type]
        for win in windows(module, h, w):
            top, bottom, left, right = win.padding
            span_h = win.dilation[0] * (win.kernel[0] - 1) + 1
            span_w = win.dilation[1] * (win.kernel[1] - 1) + 1
            if h + top + bottom < span_h or w + left + right < span_w:
                raise GeometryError(
                    f"{where}.{name} ({type(module).__name__}) gets a {h}×{w} feature map "
                    f"(padded to {h + top + bottom}×{w + left + right}), smaller than its "
                    f"{span_h}×{span_w} kernel."
                )
            h = (h + top + bottom - span_h) // win.stride[0] + 1
            w = (w + left + right - span_w) // win.stride[1] + 1
        c = out_channels(module, c)
        shapes.append((c, h, w))
    return shapes
