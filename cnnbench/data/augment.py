"""Augmentation of whole batches with tensor operations, on whatever device the batch is.

Random parameters come from a CPU generator seeded per batch, so a batch is augmented
identically on CPU and GPU, after a resume, and on every rank that sees it.

Speed (this is the inner loop of every small-model run): pixels stay uint8 until
normalization, a data module pads its training split once (:meth:`BatchAugment.pad`) so
batches are only cropped, and the crop of the whole batch is one ``index_select`` of
pixel rows, the fastest copy torch has on CPU and GPU alike.

Example:
    >>> import torch
    >>> aug = BatchAugment(translate=4, pad_mode="reflect", flip=True)
    >>> aug(torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8), seed=0).shape
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

    @property
    def border(self) -> int:
        """Pixels :meth:`pad` adds on each side (0 when the recipe does not crop)."""
        return 0 if self.rotate or self.scale else self.translate

    def pad(self, images: torch.Tensor) -> torch.Tensor:
        """``images`` with the border that random crops cut from, filled per ``pad_mode``.

        Example:
            >>> import torch
            >>> BatchAugment(translate=2).pad(torch.zeros(1, 1, 28, 28, dtype=torch.uint8)).shape
            torch.Size([1, 1, 32, 32])
        """
        b = self.border
        return F.pad(images, (b, b, b, b), mode=self.pad_mode).contiguous() if b else images

    def __call__(self, x: torch.Tensor, seed: int, padded: bool = False) -> torch.Tensor:
        """Augment a batch (N, C, H, W) of pixels, uint8 or float in 0-255; returns a new tensor.

        The dtype is kept (rotation/zoom return float32). With ``padded=True`` the batch
        already carries :attr:`border` pixels on each side (from :meth:`pad`) and comes out
        that much smaller; either way a seed gives the same result.
        """
        gen = torch.Generator().manual_seed(int(seed))
        n, device = x.shape[0], x.device
        if self.rotate or self.scale:
            x = _affine(x.float(), self.rotate, self.scale, self.translate, gen)
        elif self.translate:
            x = _crop(x if padded else self.pad(x), self.translate, gen)
        if self.flip:
            flipped = to_device((torch.rand(n, generator=gen) < 0.5).nonzero().squeeze(1), device)
            x = x.index_copy(0, flipped, x.index_select(0, flipped).flip(-1))
        if self.cutout:
            x = _cutout(x, self.cutout, gen)
        return x


def to_device(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Move a small tensor drawn on the CPU to ``device`` without making the host wait.

    A plain ``.to("cuda")`` of pageable memory synchronizes the stream: the host would wait
    for the previous training step to finish on the GPU before it could prepare the next
    batch. Pinned memory (torch's caching host allocator, which keeps the block until the
    copy is done) and ``non_blocking`` queue the copy instead."""
    if device.type != "cuda" or t.device == device:
        return t.to(device)
    return t.pin_memory().to(device, non_blocking=True)


def _crop(padded: torch.Tensor, shift: int, gen: torch.Generator) -> torch.Tensor:
    """A random (H, W) window of each padded image, offsets uniform in [0, 2 * shift]."""
    padded = padded.contiguous()
    n, c, hp, wp = padded.shape
    h, w = hp - 2 * shift, wp - 2 * shift
    dy = torch.randint(0, 2 * shift + 1, (n,), generator=gen)
    dx = torch.randint(0, 2 * shift + 1, (n,), generator=gen)
    # Every run of w consecutive pixels as a row of an overlapping view, so the crop is
    # one index_select of n*c*h rows: 2-4x faster than 4-D advanced indexing on CPU.
    flat = padded.view(-1)
    runs = flat.as_strided((flat.numel() - w + 1, w), (1, 1))
    first_row = (torch.arange(n)[:, None] * c + torch.arange(c)) * hp + dy[:, None]  # (n, c)
    starts = (first_row[:, :, None] + torch.arange(h)) * wp + dx[:, None, None]  # (n, c, h)
    return runs.index_select(0, to_device(starts.view(-1), padded.device)).view(n, c, h, w)


def _affine(x: torch.Tensor, rotate: float, scale: float, translate: int, gen: torch.Generator) -> torch.Tensor:
    n, _, h, w = x.shape
    angle = (torch.rand(n, generator=gen) * 2 - 1) * math.radians(rotate)
    zoom = 1 + (torch.rand(n, generator=gen) * 2 - 1) * scale
    shift = (torch.rand(n, 2, generator=gen) * 2 - 1) * translate * 2 / torch.tensor([w, h])
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(to_device(theta.to(x.dtype), x.device), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _cutout(x: torch.Tensor, size: int, gen: torch.Generator) -> torch.Tensor:
    n, _, h, w = x.shape
    cy = to_device(torch.randint(0, h, (n, 1, 1), generator=gen), x.device)
    cx = to_device(torch.randint(0, w, (n, 1, 1), generator=gen), x.device)
    ys = torch.arange(h, device=x.device)[None, :, None]
    xs = torch.arange(w, device=x.device)[None, None, :]
    keep = ~(((ys - cy).abs() <= size // 2) & ((xs - cx).abs() <= size // 2))
    return x * keep[:, None]


def batch_seed(seed: int, epoch: int, index: int, rank: int) -> int:
    """A distinct, reproducible seed for each (seed, epoch, batch, rank)."""
    return (((seed * 1_000_003 + epoch) * 1_000_033 + index) * 101 + rank) % (2**63)
