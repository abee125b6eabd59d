"""MNIST with digits on the border: does padding preserve edge information, in distribution?

Half of the images keep MNIST's centred placement; the other half are moved, without
losing any ink, until the bounding box of the digit's ink is flush with one of the 8
edges and corners of the 32×32 frame (1/16 of the images each). The same rule places
the train, validation and test images, so border digits are part of what the model
learns; a test image's placement is fixed by ``placement_seed`` (the same in every run
and every cell), a training image's by the run's seed. :attr:`BorderMNISTDataModule.strata`
records each image's stratum (0 = centred, 1-8 = the directions of :data:`STRATA`).

The movement helpers (:func:`shift_each`, :func:`edge_offsets`) are shared with the
translation metrics of :mod:`cnnbench.bench.robustness`.

Example:
    >>> import torch
    >>> x = torch.zeros(1, 1, 6, 6)
    >>> x[0, 0, 2:4, 2:4] = 1
    >>> edge_offsets(x, "top_left").tolist()
    [[-2, -2]]
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from cnnbench.core.choices import check_choice
from cnnbench.data.augment import BatchAugment
from cnnbench.data.mnist import MNISTDataModule
from cnnbench.data.registry import register_data

FILLS = ("zero", "circular")
EDGE_DIRECTIONS = {
    "left": (0, -1),
    "right": (0, 1),
    "top": (-1, 0),
    "bottom": (1, 0),
    "top_left": (-1, -1),
    "top_right": (-1, 1),
    "bottom_left": (1, -1),
    "bottom_right": (1, 1),
}
#: stratum names by code: 0 is the centred placement, 1-8 the edges and corners
STRATA = ("centred", *EDGE_DIRECTIONS)


def shift_each(x: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor, fill: str) -> torch.Tensor:
    """Move image ``i`` of ``x`` (N, C, H, W) by ``(dy[i], dx[i])`` pixels, in one gather.

    Positive ``dy`` moves content down, positive ``dx`` right. With ``fill="zero"`` the
    uncovered pixels are 0; with ``"circular"`` the content wraps around.

    Example:
        >>> x = torch.arange(9.0).reshape(1, 1, 3, 3)
        >>> shift_each(x, torch.tensor([1]), torch.tensor([0]), "zero")[0, 0].tolist()
        [[0.0, 0.0, 0.0], [0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]
    """
    check_choice(fill, FILLS, "fill")
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


def edge_offsets(images: torch.Tensor, direction: str) -> torch.Tensor:
    """Per image ``(dy, dx)`` that moves its nonzero pixels' bounding box onto an edge/corner.

    The other axis of an edge direction is left as it is. An empty image is not moved.
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


def assign_strata(n: int, seed: int, border_fraction: float = 0.5) -> torch.Tensor:
    """Stratum codes (N,) int64: ``round(n·border_fraction)`` border images spread evenly
    over the 8 directions (counts differ by at most 1), the rest centred (0), at random
    positions drawn from ``seed``.

    Example:
        >>> torch.bincount(assign_strata(1600, seed=0), minlength=9).tolist()
        [800, 100, 100, 100, 100, 100, 100, 100, 100]
    """
    order = torch.randperm(n, generator=torch.Generator().manual_seed(int(seed)))
    n_border = round(n * border_fraction)
    strata = torch.zeros(n, dtype=torch.long)
    strata[order[:n_border]] = torch.arange(n_border) % len(EDGE_DIRECTIONS) + 1
    return strata


def place(images: torch.Tensor, strata: torch.Tensor) -> torch.Tensor:
    """``images`` with every border-stratum image moved onto its edge/corner (no ink lost).

    Centred images (stratum 0) are returned unchanged.
    """
    dy = torch.zeros(len(images), dtype=torch.long)
    dx = torch.zeros(len(images), dtype=torch.long)
    for code, direction in enumerate(STRATA[1:], start=1):
        chosen = (strata == code).nonzero().squeeze(1)
        if len(chosen):
            offsets = edge_offsets(images[chosen], direction)
            dy[chosen], dx[chosen] = offsets[:, 0], offsets[:, 1]
    return shift_each(images, dy, dx, "zero").to(images.dtype)


@register_data("mnist_border")
class BorderMNISTDataModule(MNISTDataModule):
    """MNIST in a 32×32 frame, half the digits flush with an edge or corner, half centred.

    The data of the padding experiment: a border digit's outermost ink lies on the first or
    last row/column, where valid and same padding differ, and the model trains on such
    digits. Only ``augment: none`` exists: a random shift would move border digits off the
    border (or cut their ink). Normalization as MNIST (pixels are moved, not changed).

    Args:
        border_fraction: Share of the images placed on the border (0.5).
        placement_seed: Seed of the test set's placements (fixed across runs).
        **kwargs: As :class:`~cnnbench.data.mnist.MNISTDataModule` (``image_size`` must be 32).

    Example:
        >>> dm = BorderMNISTDataModule(root="../shared/data", download=False)
        >>> dm.image_shape, STRATA[dm.strata["test"][0]] if dm.strata else None  # doctest: +SKIP
        ((1, 32, 32), 'left')
    """

    augment_presets: ClassVar[dict[str, BatchAugment]] = {"none": BatchAugment()}

    def __init__(
        self, *args: Any, border_fraction: float = 0.5, placement_seed: int = 0, augment: str = "none", **kwargs: Any
    ) -> None:
        if kwargs.get("image_size", 32) != 32:
            raise ValueError(
                f"mnist_border places digits in a 32×32 frame; image_size must be 32, got {kwargs['image_size']!r}"
            )
        if not 0.0 <= border_fraction <= 1.0:
            raise ValueError(f"border_fraction must be in [0, 1], got {border_fraction!r}")
        if kwargs.get("loader", "tensor") != "tensor":
            raise ValueError("mnist_border places digits on the held tensors: loader must be 'tensor'")
        super().__init__(*args, augment=augment, **kwargs)
        self.border_fraction, self.placement_seed = border_fraction, placement_seed
        self.strata: dict[str, torch.Tensor] = {}

    def after_setup(self) -> None:
        # placed here, not in read_split: read_split returns the official split, whatever the
        # seed (the fork server reads it once for every cell), and the split indices are known here
        train_idx, val_idx = self.split_indices["train"], self.split_indices["val"]
        official = assign_strata(len(train_idx) + len(val_idx), self.seed * 7919 + 1, self.border_fraction)
        self.strata = {"train": official[train_idx], "val": official[val_idx]}
        self.strata["test"] = assign_strata(len(self.splits["test"][1]), self.placement_seed, self.border_fraction)
        for split, codes in self.strata.items():
            images, labels = self.splits[split]
            self.splits[split] = (place(images, codes), labels)
