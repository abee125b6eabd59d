"""What the ``strong`` presets' rotation and zoom, cutout and the per-batch seeds really do,
measured on images whose answer is known (a blob at a known place, a white canvas).

Found by mutation testing (``bash benchmarks/mutation.sh augment``): rotation/zoom had no test
at all, and cutout's square and the batch seeds' range were not checked.
"""

from __future__ import annotations

import itertools

import torch

from cnnbench.data.augment import BatchAugment, batch_seed

SIDE, RADIUS = 33, 10  # the blob sits RADIUS px right of the centre pixel (16, 16)


def blobs(n: int) -> torch.Tensor:
    x = torch.zeros(n, 1, SIDE, SIDE)
    c = SIDE // 2
    x[:, :, c - 1 : c + 2, c + RADIUS - 1 : c + RADIUS + 2] = 255.0
    return x


def polar(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Radius and angle (degrees) of each image's intensity centroid around the centre pixel."""
    w = images[:, 0].double()
    coords = torch.arange(SIDE, dtype=torch.float64) - SIDE // 2
    mass = w.sum((1, 2))
    y = (w.sum(2) * coords).sum(1) / mass
    x = (w.sum(1) * coords).sum(1) / mass
    return torch.hypot(x, y), torch.rad2deg(torch.atan2(y, x))


def test_rotation_turns_each_image_by_a_random_angle_within_the_limit() -> None:
    radius, angle = polar(BatchAugment(rotate=30.0)(blobs(300), seed=3))
    assert torch.allclose(radius, torch.full_like(radius, RADIUS), atol=0.3)  # turned, not moved or zoomed
    assert angle.abs().max() <= 30.5  # within ±30° (and a little for the bilinear blur)
    assert angle.min() < -24 and angle.max() > 24  # both ways, up to the limit
    assert (angle.abs() > 1).float().mean() > 0.9  # nearly every image turned


def test_zoom_scales_each_image_by_a_random_factor_within_the_limit() -> None:
    radius, angle = polar(BatchAugment(scale=0.3)(blobs(300), seed=4))
    ratio = radius / RADIUS
    assert angle.abs().max() < 0.5  # zoomed about the centre, not turned
    assert ratio.min() >= 0.68 and ratio.max() <= 1.32  # 1 ± 0.3, and a little for the blur
    assert ratio.min() < 0.78 and ratio.max() > 1.22  # both ways, up to the limit


def test_rotation_and_zoom_together_stay_within_both_limits() -> None:
    # each alone cannot tell the rotation-zoom matrix (R / zoom) from one that scales sin and cos
    # differently (sin * zoom): both agree when the angle is 0 or the zoom 1. Together, a wrong
    # matrix turns images past the rotation limit (atan(tan 30° · 1.3²) = 44°) and zooms past 1 ± 0.3
    radius, angle = polar(BatchAugment(rotate=30.0, scale=0.3)(blobs(400), seed=6))
    ratio = radius / RADIUS
    assert angle.abs().max() <= 30.5 and angle.min() < -24 and angle.max() > 24
    assert ratio.min() >= 0.68 and ratio.max() <= 1.32


def centroids(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    w = images[:, 0].double()
    coords = torch.arange(SIDE, dtype=torch.float64) - SIDE // 2
    mass = w.sum((1, 2))
    return (w.sum(1) * coords).sum(1) / mass - RADIUS, (w.sum(2) * coords).sum(1) / mass


def test_rotation_with_translation_moves_by_at_most_the_translation_on_each_axis() -> None:
    dx, dy = centroids(BatchAugment(rotate=1e-6, translate=3)(blobs(300), seed=5))
    for d in (dx, dy):  # each axis its own draw, both ways, up to ±3 px
        assert d.abs().max() <= 3.3 and d.min() < -2 and d.max() > 2
    assert (dx - dy).abs().max() > 1  # not one draw for both axes


def test_rotation_and_zoom_are_reproducible_per_seed() -> None:
    strong = BatchAugment(translate=2, rotate=10.0, scale=0.1)
    x = blobs(8)
    assert torch.equal(strong(x, seed=7), strong(x, seed=7))
    assert not torch.equal(strong(x, seed=7), strong(x, seed=8))


def test_cutout_zeroes_one_square_of_the_given_side_anywhere_in_the_image() -> None:
    n, h, w, size = 600, 9, 11, 5
    out = BatchAugment(cutout=size)(torch.full((n, 1, h, w), 255, dtype=torch.uint8), seed=6)
    centres = []
    for img in out[:, 0]:
        ys, xs = (img == 0).nonzero(as_tuple=True)
        top, bottom, left, right = int(ys.min()), int(ys.max()), int(xs.min()), int(xs.max())
        assert bool((img[top : bottom + 1, left : right + 1] == 0).all())  # one solid rectangle
        assert len(ys) == (bottom - top + 1) * (right - left + 1)  # ... and nothing outside it
        # a size×size square centred on a pixel, cut only by the image's edges
        assert bottom - top + 1 == min(bottom, top + size - 1, h - 1) - max(top, bottom - size + 1, 0) + 1
        assert (bottom - top + 1 == size) or top == 0 or bottom == h - 1
        assert (right - left + 1 == size) or left == 0 or right == w - 1
        cy = bottom - size // 2 if top == 0 else top + size // 2
        cx = right - size // 2 if left == 0 else left + size // 2
        centres.append((cy, cx))
    assert {c[0] for c in centres} == set(range(h)) and {c[1] for c in centres} == set(range(w))  # every row, column


def test_batch_seeds_are_distinct_in_range_and_depend_on_every_argument() -> None:
    grid = list(itertools.product(range(3), range(3), range(40), range(2)))
    seeds = [batch_seed(*args) for args in grid]
    assert len(set(seeds)) == len(grid)
    big = batch_seed(2**62, 10**6, 10**6, 7)
    assert 0 <= big < 2**63 and all(0 <= s < 2**63 for s in seeds)
    torch.Generator().manual_seed(big)  # a valid seed for torch's generator
