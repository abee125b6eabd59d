"""Building blocks whose ablation knobs are plain strings.

``make_pool(kind, ...)`` swaps the pooling operator, ``make_conv(..., padding=...)`` the
padding rule, and :func:`infer_shapes` walks a stack of layers at construction time so a
geometry that cannot work (a feature map shrunk below a kernel) is reported before any
data is touched.

Example:
    >>> import torch
    >>> pool = make_pool("min", 2)
    >>> pool(torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])).item()
    1.0
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from cnnbench.core.choices import check_choice
from cnnbench.core.vocab import PADDING_MODES, PADDINGS, POOL_KINDS

PadSpec = str | int
# the vocabularies live in cnnbench.core.vocab; re-exported here, where they were first defined


class GeometryError(ValueError):
    """A layer configuration that cannot work for the given input size."""


class InputShapeError(ValueError):
    """A batch whose shape the model cannot take (named with the expected shape)."""


def format_shape(shape: Iterable[int]) -> str:
    """``(1, 32, 32)`` → ``"1×32×32"``."""
    return "×".join(str(int(d)) for d in shape)


def _pair(v: int | tuple[int, int]) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


def same_padding(n: int, k: int, s: int, d: int = 1) -> tuple[int, int]:
    """TensorFlow-style ``same`` padding (before, after) so that out = ceil(n / s)."""
    total = max((math.ceil(n / s) - 1) * s + (k - 1) * d + 1 - n, 0)
    return total // 2, total - total // 2


def conv_output_size(n: int, k: int, s: int, pad_total: int, d: int = 1) -> int:
    """floor((n + pad_total - d·(k-1) - 1) / s) + 1, the usual sliding-window formula."""
    return (n + pad_total - d * (k - 1) - 1) // s + 1


# ----------------------------------------------------------------------------- convolution


class Conv2d(nn.Conv2d):
    """``nn.Conv2d`` with ``valid``/``same``/``full``/int padding and any ``padding_mode``.

    Symmetric cases use PyTorch's own padding; ``same`` with a stride or an even kernel
    pads asymmetrically at run time (as TensorFlow does), since PyTorch's
    ``padding="same"`` refuses strided convolutions. The state-dict keys are exactly those
    of ``nn.Conv2d`` (plus ``pad_value`` with ``padding_mode="background"``), so weights
    move freely to and from torchvision models.

    ``padding_mode="background"`` pads each input channel with a constant, its
    *background*: for a model's first layer, the normalized value of a blank pixel,
    ``(0 - mean) / std`` (-0.4242 on MNIST). Zero padding after normalization puts a grey
    frame around every MNIST digit (0 is not the background there); background padding is
    what padding the raw image with blank pixels before normalization would give, so a
    blank image stays blank up to the frame. The value is set with :meth:`set_background`
    (models do it from their data module's mean/std when fitting) and saved in the state dict;
    until it is set (a summary before any data), the layer pads with 0.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: PadSpec = "valid",
        padding_mode: str = "zeros",
        dilation: int = 1,
        groups: int = 1,
        bias: bool = True,
    ) -> None:
        check_choice(padding_mode, PADDING_MODES, "padding_mode")
        if isinstance(padding, str):
            check_choice(padding, PADDINGS, "padding")
        elif not isinstance(padding, int) or padding < 0:
            raise ValueError(f"padding must be one of {', '.join(PADDINGS)} or an int >= 0, got {padding!r}")
        k, s = _pair(kernel_size), _pair(stride)
        self.pad_spec: PadSpec = padding
        self.dynamic_same = padding == "same" and any(si > 1 or ki % 2 == 0 for ki, si in zip(k, s))
        if padding == "valid" or self.dynamic_same:
            native: tuple[int, int] = (0, 0)
        elif padding == "same":
            native = (dilation * (k[0] - 1) // 2, dilation * (k[1] - 1) // 2)
        elif padding == "full":
            native = (dilation * (k[0] - 1), dilation * (k[1] - 1))
        else:
            native = (int(padding), int(padding))
        self.background = padding_mode == "background"
        # background padding is a constant pad done here (torch has no per-channel constant mode)
        self.static_pad = (native[0], native[0], native[1], native[1])
        torch_mode = "zeros" if self.background else padding_mode
        super().__init__(
            in_channels,
            out_channels,
            k,
            s,
            0 if self.background else native,
            dilation,
            groups,
            bias,
            torch_mode,  # type: ignore[arg-type]
        )
        self.padding_mode_name = padding_mode
        self.background_values: list[float] | None = None
        self._warned = False
        if self.background:
            self.pad_value: torch.Tensor
            self.register_buffer("pad_value", torch.zeros(in_channels))

    def set_background(self, values: float | Iterable[float]) -> None:
        """Set the per-channel padding value of ``padding_mode="background"`` (one float: all channels).

        Example:
            >>> conv = Conv2d(1, 1, 3, padding="same", padding_mode="background")
            >>> conv.set_background(-0.4242)
            >>> round(conv.pad_value.item(), 4)
            -0.4242
        """
        if not self.background:
            raise ValueError(f"set_background needs padding_mode='background', not {self.padding_mode_name!r}")
        vals = [float(values)] * self.in_channels if isinstance(values, int | float) else [float(v) for v in values]
        if len(vals) != self.in_channels:
            raise ValueError(f"background: {len(vals)} values for {self.in_channels} input channels")
        with torch.no_grad():
            self.pad_value.copy_(torch.tensor(vals))
        self.background_values = vals

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any) -> None:
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        if self.background and prefix + "pad_value" in state_dict:
            self.background_values = [float(v) for v in self.pad_value]

    def pad_amounts(self, h: int, w: int) -> tuple[int, int, int, int]:
        """(top, bottom, left, right) padding applied to an ``h``×``w`` input."""
        if self.dynamic_same:
            top, bottom = same_padding(h, self.kernel_size[0], self.stride[0], self.dilation[0])
            left, right = same_padding(w, self.kernel_size[1], self.stride[1], self.dilation[1])
            return top, bottom, left, right
        return self.static_pad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.convolve(x, self.weight)

    def convolve(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """Convolve ``x`` with ``weight`` under this layer's padding rule."""
        if not (self.dynamic_same or self.background):
            return self._conv_forward(x, weight, self.bias)
        top, bottom, left, right = self.pad_amounts(x.shape[-2], x.shape[-1])
        if self.background:
            x = self._pad_background(x, (left, right, top, bottom))
        else:
            mode = "constant" if self.padding_mode == "zeros" else self.padding_mode
            x = F.pad(x, (left, right, top, bottom), mode=mode)
        return F.conv2d(x, weight, self.bias, self.stride, 0, self.dilation, self.groups)

    def _pad_background(self, x: torch.Tensor, pads: tuple[int, int, int, int]) -> torch.Tensor:
        values = self.background_values
        if values is None:
            # no data module has set it yet (a summary, a shape check): pad with 0 meanwhile
            if self.training and torch.is_grad_enabled() and not self._warned:
                warnings.warn(
                    "Conv2d(padding_mode='background') trains without a background value and pads with 0: call "
                    "set_background(-mean / std), or fit with a data module (cnnbench's models take it from it)",
                    stacklevel=2,
                )
                self._warned = True
            return F.pad(x, pads)
        if len(set(values)) == 1:
            return F.pad(x, pads, value=values[0])
        shift = self.pad_value.to(x.dtype)[:, None, None]
        return F.pad(x - shift, pads) + shift  # constant per channel, exact inside


def first_layer_modes(padding_mode: str) -> tuple[str, str]:
    """Padding modes of (the first conv, the later convs) for a model's ``padding_mode``.

    ``background`` applies to the first layer only, the one that sees the image: later
    layers see feature maps, where 0 (after ReLU: no response) is the usual padding.
    """
    return (padding_mode, "zeros") if padding_mode == "background" else (padding_mode, padding_mode)


class BackgroundFromData:
    """Mixin for a LightningModule: its background-padded convs take ``-mean/std`` from the
    data module when a Trainer sets it up (``setup``), unless a value is already set."""

    def setup(self, stage: str) -> None:
        datamodule = getattr(getattr(self, "trainer", None), "datamodule", None)
        if datamodule is not None and hasattr(datamodule, "mean") and isinstance(self, nn.Module):
            set_background_from_data(self, datamodule.mean, datamodule.std)
        super().setup(stage)  # type: ignore[misc]


def set_background_from_data(model: nn.Module, mean: Iterable[float], std: Iterable[float]) -> None:
    """Give every background-padded :class:`Conv2d` of ``model`` the normalized blank pixel ``-mean/std``.

    Layers whose value was already set (explicitly, or by a loaded checkpoint) keep it.
    """
    values = [-m / s for m, s in zip(mean, std)]
    for module in model.modules():
        if isinstance(module, Conv2d) and module.background and module.background_values is None:
            module.set_background(values)


def make_conv(
    in_channels: int,
    out_channels: int,
    kernel_size: int,
    stride: int = 1,
    padding: PadSpec = "valid",
    padding_mode: str = "zeros",
    **kwargs: int | bool,
) -> Conv2d:
    """A :class:`Conv2d` with a string padding rule (see its docstring)."""
    return Conv2d(in_channels, out_channels, kernel_size, stride, padding, padding_mode, **kwargs)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- pooling


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

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}"


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
    s = kernel_size if stride is None else stride
    if kind in ("conv", "subsample"):
        if channels is None:
            raise ValueError(f"pool={kind!r} has parameters and needs `channels`")
        return ConvPool2d(channels, kernel_size, s) if kind == "conv" else Subsample2d(channels, kernel_size, s)
    simple: dict[str, type[nn.Module]] = {
        "max": nn.MaxPool2d, "avg": nn.AvgPool2d, "min": MinPool2d, "decimate": Decimate2d,
    }  # fmt: skip
    if kind in simple:
        return simple[kind](kernel_size, s)
    return PowerAvgPool2d(kernel_size, s) if kind == "lp" else BlurMaxPool2d(kernel_size, s)


# ----------------------------------------------------------------------------- geometry


@dataclass(frozen=True)
class Window:
    """One sliding-window operation: what shape inference and receptive fields need."""

    kernel: tuple[int, int]
    stride: tuple[int, int]
    dilation: tuple[int, int]
    padding: tuple[int, int, int, int]  # top, bottom, left, right


def windows(module: nn.Module, h: int, w: int) -> list[Window]:
    """The sliding windows ``module`` applies to an ``h``×``w`` map (empty for pointwise layers)."""
    if isinstance(module, Conv2d):
        return [Window(module.kernel_size, module.stride, module.dilation, module.pad_amounts(h, w))]  # type: ignore[arg-type]
    if isinstance(module, nn.Conv2d):
        ph, pw = _pair(module.padding)  # type: ignore[arg-type]
        return [Window(_pair(module.kernel_size), _pair(module.stride), _pair(module.dilation), (ph, ph, pw, pw))]  # type: ignore[arg-type]
    if isinstance(module, BlurMaxPool2d):
        k, s = _pair(module.kernel_size), _pair(module.stride)
        return [Window(k, (1, 1), (1, 1), (0, 0, 0, 0)), Window((3, 3), s, (1, 1), (1, 1, 1, 1))]
    if isinstance(module, Decimate2d):
        k, s = _pair(module.kernel_size), _pair(module.stride)
        return [Window(k, s, (1, 1), (0, 0, 0, 0))]
    if isinstance(module, (nn.MaxPool2d, nn.AvgPool2d, nn.LPPool2d)):
        k = _pair(module.kernel_size)  # type: ignore[arg-type]
        s = _pair(module.stride or module.kernel_size)  # type: ignore[arg-type]
        ph, pw = _pair(getattr(module, "padding", 0))  # type: ignore[arg-type]
        d = _pair(getattr(module, "dilation", 1))  # type: ignore[arg-type]
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
            h, w = _pair(module.output_size)  # type: ignore[arg-type]
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
