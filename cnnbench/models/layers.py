"""Convolutions whose padding rule is a plain string, and the models' building-block vocabulary.

``make_conv(..., padding=..., padding_mode=...)`` swaps the padding rule (``valid``, ``same``,
``full``, an int; modes ``zeros`` ... ``background``). The pools live in
:mod:`cnnbench.models.pooling`, shape inference in :mod:`cnnbench.models.geometry`; their
public names are importable from here too (``from cnnbench.models.layers import make_pool``).

Example:
    >>> import torch
    >>> conv = make_conv(1, 6, 5, stride=2, padding="same")
    >>> conv(torch.zeros(1, 1, 32, 32)).shape
    torch.Size([1, 6, 16, 16])
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from cnnbench.core.choices import check_choice
from cnnbench.core.vocab import PADDING_MODES, PADDINGS, POOL_KINDS
from cnnbench.models.geometry import (
    GeometryError,
    InputShapeError,
    Window,
    conv_output_size,
    format_shape,
    infer_shapes,
    out_channels,
    pair,
    same_padding,
    total_stride,
    windows,
)
from cnnbench.models.pooling import (
    POOLS,
    BlurMaxPool2d,
    ConvPool2d,
    Decimate2d,
    MinPool2d,
    PowerAvgPool2d,
    Subsample2d,
    make_pool,
    pool_name,
)

#: a padding rule: a name (:data:`~cnnbench.core.vocab.PADDINGS`, or a model's ``default``) or a width in pixels
PadSpec = str | int


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
        k, s = pair(kernel_size), pair(stride)
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

    def sliding_windows(self, h: int, w: int) -> list[Window]:
        """The one window of this convolution on an ``h``×``w`` input, with its padding there."""
        return [Window(pair(self.kernel_size), pair(self.stride), pair(self.dilation), self.pad_amounts(h, w))]

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


__all__ = [
    "PADDINGS",
    "PADDING_MODES",
    "POOLS",
    "POOL_KINDS",
    "BackgroundFromData",
    "BlurMaxPool2d",
    "Conv2d",
    "ConvPool2d",
    "Decimate2d",
    "GeometryError",
    "InputShapeError",
    "MinPool2d",
    "PadSpec",
    "PowerAvgPool2d",
    "Subsample2d",
    "Window",
    "conv_output_size",
    "first_layer_modes",
    "format_shape",
    "infer_shapes",
    "make_conv",
    "make_pool",
    "out_channels",
    "pool_name",
    "same_padding",
    "set_background_from_data",
    "total_stride",
    "windows",
]
