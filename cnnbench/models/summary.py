"""Per-layer summary: output shapes, parameters, multiply-accumulates, receptive fields.

Example:
    >>> from cnnbench.models import create_model, summarize
    >>> rows = summarize(create_model("lenet5"))
    >>> sum(r.params for r in rows), sum(r.macs for r in rows)
    (61706, 416520)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from cnnbench.models.geometry import windows
from cnnbench.models.layers import Conv2d
from cnnbench.models.pooling import BlurMaxPool2d, ConvPool2d, pool_name


@dataclass(frozen=True)
class LayerRow:
    """One leaf layer of a model, as run on a single example."""

    name: str
    kind: str
    output_shape: tuple[int, ...]
    params: int
    macs: int
    receptive_field: tuple[int, int]
    padding: str
    pooling: str


def _macs(module: nn.Module, out: torch.Tensor) -> int:
    """Multiply-accumulates of one example through ``module``.

    Counted: convolutions (dense, grouped, partial: weight elements × output positions),
    dense layers, the fixed blur filter and RBF distances. Comparisons (max), averages
    and activations are not multiply-accumulates and count 0.
    """
    if isinstance(module, nn.Conv2d):
        return int(module.weight.numel() * out.shape[-1] * out.shape[-2])
    if isinstance(module, nn.Linear):
        return int(module.weight.numel())
    if isinstance(module, BlurMaxPool2d):
        return int(out[0].numel() * 9)
    if type(module).__name__ == "RBFOutput":
        return int(module.codes.numel())  # type: ignore[operator]
    return 0


def _padding_desc(module: nn.Module) -> str:
    if isinstance(module, Conv2d) and not isinstance(module, ConvPool2d):
        spec = module.pad_spec
        return f"{spec} ({module.padding_mode})" if module.padding_mode != "zeros" else str(spec)
    if isinstance(module, nn.Conv2d):
        return str(module.padding)
    return ""


class _ReceptiveField:
    """The receptive field of one unit and the jump between units, layer after layer (rows, columns)."""

    def __init__(self, shape: tuple[int, int, int]) -> None:
        self.shape = shape
        self.rf, self.jump, self.hw = [1, 1], [1, 1], (shape[1], shape[2])

    def step(self, module: nn.Module, out: torch.Tensor) -> tuple[int, int]:
        """Advance past ``module`` (whose output is ``out``); the receptive field after it."""
        (h, w), rf, jump = self.hw, self.rf, self.jump
        if isinstance(module, nn.AdaptiveAvgPool2d | nn.AdaptiveMaxPool2d | nn.Linear) or out.ndim == 2:
            if out.ndim == 2 or isinstance(module, nn.Linear):
                rf[:] = [self.shape[1], self.shape[2]]
            if out.ndim == 4:  # adaptive pool: window ≈ ceil(in / out)
                for i, (n, o) in enumerate(zip((h, w), out.shape[-2:])):
                    k = math.ceil(n / o)
                    rf[i] = min(rf[i] + (k - 1) * jump[i], self.shape[1 + i])
        else:
            for win in windows(module, h, w):
                for i in range(2):
                    rf[i] += win.dilation[i] * (win.kernel[i] - 1) * jump[i]
                    jump[i] *= win.stride[i]
        if out.ndim == 4:
            self.hw = (int(out.shape[-2]), int(out.shape[-1]))
        return int(rf[0]), int(rf[1])


@torch.no_grad()
def summarize(model: nn.Module, input_shape: tuple[int, int, int] | None = None) -> list[LayerRow]:
    """Run one example through ``model`` and describe every leaf layer that ran.

    Args:
        model: Any ``nn.Module``; cnnbench models know their own input shape.
        input_shape: (C, H, W) of the example; defaults to ``model.input_shape``.

    Returns:
        One :class:`LayerRow` per leaf layer in execution order. ``params`` sums to the
        model's parameter count; ``receptive_field`` is that of one output unit in input
        pixels (the whole input after a global pool or a dense layer).
    """
    shape: tuple[int, int, int] = input_shape or model.input_shape  # type: ignore[assignment]
    rows: list[LayerRow] = []
    field = _ReceptiveField(shape)

    def hook(name: str):  # type: ignore[no-untyped-def]
        def record(module: nn.Module, inputs: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
            rf = field.step(module, out)
            params = sum(p.numel() for p in module.parameters(recurse=False))
            rows.append(
                LayerRow(
                    name,
                    type(module).__name__,
                    tuple(out.shape[1:]),
                    params,
                    _macs(module, out),
                    rf,
                    _padding_desc(module),
                    pool_name(module),
                )
            )

        return record

    leaves = [(n, m) for n, m in model.named_modules() if n and not list(m.children())]
    handles = [m.register_forward_hook(hook(n)) for n, m in leaves]
    was_training = model.training
    try:
        model.eval()
        param = next(model.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
        model(torch.zeros(1, *shape, device=device))
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return rows


def format_summary(rows: list[LayerRow]) -> str:
    """A plain-text table of ``rows`` with totals, as ``cnnbench summary`` prints it."""
    head = ("layer", "type", "output", "params", "MACs", "RF", "padding", "pool")
    table = [head] + [
        (
            r.name,
            r.kind,
            "×".join(map(str, r.output_shape)),
            f"{r.params:,}",
            f"{r.macs:,}",
            f"{r.receptive_field[0]}×{r.receptive_field[1]}",
            r.padding,
            r.pooling,
        )
        for r in rows
    ]
    table.append(("total", "", "", f"{sum(r.params for r in rows):,}", f"{sum(r.macs for r in rows):,}", "", "", ""))
    widths = [max(len(row[i]) for row in table) for i in range(len(head))]
    lines = ["  ".join(cell.ljust(wd) for cell, wd in zip(row, widths)).rstrip() for row in table]
    lines.insert(1, "-" * len(lines[0]))
    lines.insert(len(lines) - 1, "-" * len(lines[0]))
    return "\n".join(lines)
