"""Augmentation of whole batches with tensor operations, on whatever device the batch is.

Random parameters come from a CPU generator seeded per batch, so a batch is augmented
identically on CPU and GPU, after a resume, and on every rank that sees it.

Example:
    >>> import torch
    >>> aug = BatchAugment(translate=4, pad_mode="reflect", flip=True)
    >>> aug(torch.rand(8, 3, 32, 32) * 255, seed=0).shape
    torch.Size([8, 3, 32, 32])
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class BatchAugment:
    """A batch augmentation recipe; every field off (0/False) means identity.

    Args:
        translate: Maximum shift in pixels on each axis (pad then random crop).
        pad_mode: How the border is filled when translating: ``constant`` (zeros),
            ``reflect`` or ``replicate``.
        flip: Random horizontal flips (never for digits).
        rotate: Maximum rotation in degrees (random affine).
        scale: Maximum relative zoom, e.g. 0.1 for 0.9-1.1 (random affine).
        cutout: Side of a square zeroed at a random place (0 = off).
    """

    translate: int = 0
    pad_mode: str = "constant"
    flip: bool = False
    rotate: float = 0.0
    scale: float = 0.0
    cutout: int = 0

    def __call__(self, x: torch.Tensor, seed: int) -> torch.Tensor:
        """Augment a float batch (N, C, H, W) in pixel units; returns a new tensor."""
        gen = torch.Generator().manual_seed(int(seed))
        n, device = x.shape[0], x.device
        if self.rotate or self.scale:
            x = _affine(x, self.rotate, self.scale, self.translate, gen)
        elif self.translate:
            x = _translate(x, self.translate, self.pad_mode, gen)
        if self.flip:
            mask = (torch.rand(n, generator=gen) < 0.5).to(device)
            x = torch.where(mask[:, None, None, None], x.flip(-1), x)
        if self.cutout:
            x = _cutout(x, self.cutout, gen)
        return x


def _translate(x: torch.Tensor, shift: int, pad_mode: str, gen: torch.Generator) -> torch.Tensor:
    n, c, h, w = x.shape
    padded = F.pad(x, (shift, shift, shift, shift), mode=pad_mode)
    dy = torch.randint(0, 2 * shift + 1, (n,), generator=gen).to(x.device)
    dx = torch.randint(0, 2 * shift + 1, (n,), generator=gen).to(x.device)
    rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, None, :]
    batch = torch.arange(n, device=x.device)[:, None, None, None]
    chans = torch.arange(c, device=x.device)[None, :, None, None]
    return padded[batch, chans, rows, cols]


def _affine(x: torch.Tensor, rotate: float, scale: float, translate: int, gen: torch.Generator) -> torch.Tensor:
    n, _, h, w = x.shape
    angle = (torch.rand(n, generator=gen) * 2 - 1) * math.radians(rotate)
    zoom = 1 + (torch.rand(n, generator=gen) * 2 - 1) * scale
    shift = (torch.rand(n, 2, generator=gen) * 2 - 1) * translate * 2 / torch.tensor([w, h])
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta.to(x.device, x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _cutout(x: torch.Tensor, size: int, gen: torch.Generator) -> torch.Tensor:
    n, _, h, w = x.shape
    cy = torch.randint(0, h, (n, 1, 1), generator=gen).to(x.device)
    cx = torch.randint(0, w, (n, 1, 1), generator=gen).to(x.device)
    ys = torch.arange(h, device=x.device)[None, :, None]
    xs = torch.arange(w, device=x.device)[None, None, :]
    keep = ~(((ys - cy).abs() <= size // 2) & ((xs - cx).abs() <= size // 2))
    return x * keep[:, None]


def batch_seed(seed: int, epoch: int, index: int, rank: int) -> int:
    """A distinct, reproducible seed for each (seed, epoch, batch, rank)."""
    return (((seed * 1_000_003 + epoch) * 1_000_033 + index) * 101 + rank) % (2**63)
