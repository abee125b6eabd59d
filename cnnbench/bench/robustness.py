"""Do pooling and padding buy translation robustness? Measured on the test set, batched.

* **Shift consistency** as Zhang (2019, "Making Convolutional Networks Shift-Invariant
  Again") defines it: the probability that two copies of an image, each shifted by an
  independent random offset, get the same top-1 class. Offsets are uniform integers in
  ``[-k, k]`` on both axes (both signs), drawn per image and per copy from a seeded
  generator. Each image gets ``copies`` shifted copies and every pair of them counts
  (``copies·(copies-1)/2`` pairs for ``copies`` forward passes; an unbiased estimate of the
  same probability). Two variants: ``zero`` (uncovered pixels are 0) and ``circular``
  (content wraps around, Zhang's choice for CIFAR).
* **Accuracy under shift**: the accuracy of those same shifted copies, per ``k``.
* **Edge probe**: each image moved until the bounding box of its nonzero pixels touches an
  edge or a corner (8 directions). Nothing leaves the frame, so the lost-ink fraction is
  exactly 0 (computed and reported); it measures whether a model still recognises content
  that sits on the border, where valid and same padding differ. On images without a
  background (CIFAR) the box is the whole frame and the probe moves nothing
  (``mean_shift_px`` says so).

Example:
    >>> import torch
    >>> x = torch.arange(9.0).reshape(1, 1, 3, 3)
    >>> shift_each(x, torch.tensor([1]), torch.tensor([0]), "zero")[0, 0].tolist()
    [[0.0, 0.0, 0.0], [0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

FILLS = ("zero", "circular")
EDGE_DIRECTIONS = {
    "left": (0, -1), "right": (0, 1), "top": (-1, 0), "bottom": (1, 0),
    "top_left": (-1, -1), "top_right": (-1, 1), "bottom_left": (1, -1), "bottom_right": (1, 1),
}  # fmt: skip


def shift_each(x: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor, fill: str) -> torch.Tensor:
    """Move image ``i`` of ``x`` (N, C, H, W) by ``(dy[i], dx[i])`` pixels, in one gather.

    Positive ``dy`` moves content down, positive ``dx`` right. With ``fill="zero"`` the
    uncovered pixels are 0; with ``"circular"`` the content wraps around.
    """
    if fill not in FILLS:
        raise ValueError(f"unknown fill {fill!r}; valid: {', '.join(FILLS)}")
    n, c, h, w = x.shape
    dy, dx = dy.to(x.device).long(), dx.to(x.device).long()
    rows = torch.arange(h, device=x.device)[None, :] - dy[:, None]  # source row of each output row
    cols = torch.arange(w, device=x.device)[None, :] - dx[:, None]
    if fill == "circular":
        rows, cols = rows % h, cols % w
    else:
        keep = ((rows >= 0) & (rows < h))[:, :, None] & ((cols >= 0) & (cols < w))[:, None, :]
        rows, cols = rows.clamp(0, h - 1), cols.clamp(0, w - 1)
    batch = torch.arange(n, device=x.device)[:, None, None, None]
    chan = torch.arange(c, device=x.device)[None, :, None, None]
    out = x[batch, chan, rows[:, None, :, None], cols[:, None, None, :]]
    if fill == "zero":
        out = out * keep[:, None].to(out.dtype)
    return out


def random_offsets(n: int, k: int, copies: int, seed: int) -> torch.Tensor:
    """Offsets ``(copies, n, 2)`` (dy, dx), independent uniform integers in ``[-k, k]``.

    Example:
        >>> o = random_offsets(1000, 2, 3, seed=0)
        >>> o.shape, int(o.min()), int(o.max())
        (torch.Size([3, 1000, 2]), -2, 2)
    """
    gen = torch.Generator().manual_seed(int(seed) * 1009 + int(k))  # a different stream per k
    return torch.randint(-k, k + 1, (copies, n, 2), generator=gen)


def edge_offsets(images: torch.Tensor, direction: str) -> torch.Tensor:
    """Per image ``(dy, dx)`` that moves its nonzero pixels' bounding box onto an edge/corner.

    An empty image (no nonzero pixel) is not moved.
    """
    sy, sx = EDGE_DIRECTIONS[direction]
    h, w = images.shape[-2:]
    ink = images.detach().abs().sum(1) > 0  # (N, H, W)
    rows, cols = ink.any(2), ink.any(1)  # (N, H), (N, W)
    idx_h, idx_w = torch.arange(h, device=images.device), torch.arange(w, device=images.device)
    has = rows.any(1)
    top = torch.where(rows, idx_h, h).amin(1)
    bottom = torch.where(rows, idx_h, -1).amax(1)
    left = torch.where(cols, idx_w, w).amin(1)
    right = torch.where(cols, idx_w, -1).amax(1)
    dy = (-top if sy < 0 else (h - 1 - bottom) if sy > 0 else torch.zeros_like(top)) * has
    dx = (-left if sx < 0 else (w - 1 - right) if sx > 0 else torch.zeros_like(left)) * has
    return torch.stack([dy, dx], 1)


def _predict(
    model: torch.nn.Module, x: torch.Tensor, normalize: Callable[[torch.Tensor], torch.Tensor], batch_size: int
) -> torch.Tensor:
    return torch.cat([model(normalize(x[i : i + batch_size])).argmax(-1) for i in range(0, len(x), batch_size)])


@torch.no_grad()
def evaluate_robustness(
    model: torch.nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    normalize: Callable[[torch.Tensor], torch.Tensor],
    shifts: list[int],
    fills: tuple[str, ...] | list[str] = FILLS,
    copies: int = 4,
    seed: int = 0,
    edge: bool = True,
    batch_size: int = 4096,
) -> dict[str, Any]:
    """Shift consistency, accuracy under shift and the edge probe of ``model``.

    Args:
        model: A classifier; evaluated in eval mode on its own device (mode restored).
        images: Pixels 0-255 (N, C, H, W), uint8 or float, any device.
        labels: Classes (N,).
        normalize: Pixels → model input (the data module's ``normalize``).
        shifts: Largest offsets ``k`` to measure (pixels, each axis).
        fills: ``zero`` and/or ``circular``.
        copies: Shifted copies per image and ``k`` (≥ 2); all their pairs count.
        seed: Seed of the offsets (the same images get the same offsets in every cell).
        edge: Run the edge probe.
        batch_size: Images per forward pass.

    Returns:
        ``{"acc", "shift": {fill: {"consistency": {k: p}, "acc": {k: a}}}, "edge": {...},
        "definition", "copies", "pairs", "seed", "images"}``.

    Example:
        >>> import torch
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 3))
        >>> x, y = torch.randint(0, 256, (50, 1, 8, 8)).float(), torch.randint(0, 3, (50,))
        >>> r = evaluate_robustness(model, x, y, lambda t: t / 255, shifts=[1, 2], copies=3)
        >>> sorted(r["shift"]), sorted(r["shift"]["zero"]["consistency"])
        (['circular', 'zero'], [1, 2])
    """
    if copies < 2:
        raise ValueError(f"copies must be >= 2 (consistency compares pairs), got {copies}")
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    x, y = images.to(device).float(), labels.to(device)
    n = len(y)
    clean = _predict(model, x, normalize, batch_size)
    result: dict[str, Any] = {
        "acc": float((clean == y).float().mean()) if n else float("nan"),
        "definition": "zhang2019",
        "copies": copies,
        "pairs": copies * (copies - 1) // 2,
        "seed": seed,
        "images": n,
        "shift": {},
    }
    for fill in fills:
        consistency, accuracy = {}, {}
        for k in shifts:
            offsets = random_offsets(n, k, copies, seed)
            preds = torch.stack(
                [_predict(model, shift_each(x, o[:, 0], o[:, 1], fill), normalize, batch_size) for o in offsets]
            )  # (copies, N)
            agree = [(preds[i] == preds[j]).float().mean() for i in range(copies) for j in range(i + 1, copies)]
            consistency[k] = float(torch.stack(agree).mean())
            accuracy[k] = float((preds == y[None]).float().mean())
        result["shift"][fill] = {"consistency": consistency, "acc": accuracy}
    if edge:
        result["edge"] = edge_probe(model, x, y, normalize, batch_size)
    model.train(was_training)
    return result


def edge_probe(
    model: torch.nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    normalize: Callable[[torch.Tensor], torch.Tensor],
    batch_size: int = 4096,
) -> dict[str, Any]:
    """Accuracy with each image's content moved onto each edge and corner, no ink lost.

    Returns:
        ``{"acc": {direction: a}, "acc_mean": a, "lost_ink": f, "mean_shift_px": {direction: px}}``
        where ``lost_ink`` is the fraction of the total pixel mass that left the frame (0).
    """
    x = images.float()
    total = float(x.double().sum())  # pixel values are integers: float64 sums are exact
    acc, moved, lost = {}, {}, 0.0
    for name in EDGE_DIRECTIONS:
        offsets = edge_offsets(x, name)
        shifted = shift_each(x, offsets[:, 0], offsets[:, 1], "zero")
        lost = max(lost, (total - float(shifted.double().sum())) / max(total, 1e-12))
        pred = _predict(model, shifted, normalize, batch_size)
        acc[name] = float((pred == labels).float().mean())
        moved[name] = float(offsets.float().norm(dim=1).mean())
    return {
        "acc": acc,
        "acc_mean": sum(acc.values()) / len(acc),
        "lost_ink": lost,
        "mean_shift_px": moved,
    }
