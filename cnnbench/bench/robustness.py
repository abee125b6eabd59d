"""Do pooling and padding buy translation robustness? Measured on the test set.

* **Shift accuracy / consistency** (after Zhang 2019): accuracy on test images shifted by
  ``s`` pixels along both axes, and the fraction of images whose predicted class does not
  change between the original and the shifted copy.
* **Border accuracy**: accuracy when the content is pushed ``border`` pixels toward each
  edge and corner, where valid and same padding treat pixels differently.

Everything runs batched on the model's device.

Example:
    >>> import torch
    >>> shift_images(torch.arange(4.0).reshape(1, 1, 2, 2), 1, 0, "zero")[0, 0].tolist()
    [[0.0, 0.0], [0.0, 1.0]]
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

BORDER_DIRECTIONS = {
    "left": (0, -1), "right": (0, 1), "top": (-1, 0), "bottom": (1, 0),
    "top_left": (-1, -1), "top_right": (-1, 1), "bottom_left": (1, -1), "bottom_right": (1, 1),
}  # fmt: skip


def shift_images(x: torch.Tensor, dy: int, dx: int, fill: str) -> torch.Tensor:
    """Move content by (dy, dx) pixels; uncovered pixels are 0 (``zero``) or wrap (``circular``)."""
    if fill == "circular":
        return torch.roll(x, shifts=(dy, dx), dims=(-2, -1))
    h, w = x.shape[-2:]
    padded = F.pad(x, (max(dx, 0), max(-dx, 0), max(dy, 0), max(-dy, 0)))
    top, left = max(-dy, 0), max(-dx, 0)
    return padded[..., top : top + h, left : left + w]


@torch.no_grad()
def evaluate_robustness(
    model: torch.nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    normalize: Callable[[torch.Tensor], torch.Tensor],
    shifts: list[int],
    fill: str = "zero",
    border: int | None = None,
    batch_size: int = 1000,
) -> dict[str, Any]:
    """Shift and border metrics of ``model`` on ``images`` (pixel values 0-255).

    Returns:
        ``{"acc": a, "shift_acc": {s: a}, "shift_consistency": {s: c}, "border_acc": {dir: a},
        "border_acc_mean": a}``; with ``border`` defaulting to a quarter of the image side.
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    border = border if border is not None else images.shape[-1] // 4
    variants: dict[str, tuple[int, int, str]] = {f"shift_{s}": (s, s, fill) for s in shifts}
    variants.update(
        {f"border_{name}": (dy * border, dx * border, "zero") for name, (dy, dx) in BORDER_DIRECTIONS.items()}
    )
    correct = dict.fromkeys(["clean", *variants], 0)
    same = dict.fromkeys(variants, 0)
    for start in range(0, len(labels), batch_size):
        x = images[start : start + batch_size].to(device).float()
        y = labels[start : start + batch_size].to(device)
        clean = model(normalize(x)).argmax(-1)
        correct["clean"] += int((clean == y).sum())
        for key, (dy, dx, mode) in variants.items():
            pred = model(normalize(shift_images(x, dy, dx, mode))).argmax(-1)
            correct[key] += int((pred == y).sum())
            same[key] += int((pred == clean).sum())
    model.train(was_training)
    n = max(len(labels), 1)
    border_acc = {name: correct[f"border_{name}"] / n for name in BORDER_DIRECTIONS}
    return {
        "acc": correct["clean"] / n,
        "shift_acc": {s: correct[f"shift_{s}"] / n for s in shifts},
        "shift_consistency": {s: same[f"shift_{s}"] / n for s in shifts},
        "border_acc": border_acc,
        "border_acc_mean": sum(border_acc.values()) / len(border_acc),
        "border": border,
        "fill": fill,
        "images": len(labels),
    }
