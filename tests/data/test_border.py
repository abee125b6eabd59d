"""Border-placed MNIST against a plain-numpy reference of its placement rule."""

from pathlib import Path

import numpy as np
import pytest
import torch

from cnnbench.data import create_data
from cnnbench.data.border import STRATA, assign_strata
from tests.fakes import write_idx

# numpy reference: direction → (row rule, column rule); -1 flush top/left, +1 bottom/right, 0 unchanged
DIRECTIONS = {
    "left": (0, -1),
    "right": (0, 1),
    "top": (-1, 0),
    "bottom": (1, 0),
    "top_left": (-1, -1),
    "top_right": (-1, 1),
    "bottom_left": (1, -1),
    "bottom_right": (1, 1),
}


def blob_digits(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """28×28 images on a 0 background with a random rectangle of ink (1-255) inside."""
    rng = np.random.default_rng(seed)
    images = np.zeros((n, 28, 28), np.uint8)
    for img in images:
        h, w = rng.integers(3, 20, 2)
        top, left = rng.integers(1, 28 - h), rng.integers(1, 28 - w)
        img[top : top + h, left : left + w] = rng.integers(1, 256, (h, w))
    return images, rng.integers(0, 10, n).astype(np.uint8)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("border")
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for prefix, n, seed in (("train", 400, 0), ("t10k", 160, 1)):
        images, labels = blob_digits(n, seed)
        write_idx(raw / f"{prefix}-images-idx3-ubyte", images)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels)
    return root


def make_data(root: Path, seed: int = 0, **kwargs: object) -> object:
    dm = create_data("mnist_border", root=str(root), download=False, verify=False, val_size=80, seed=seed, **kwargs)
    dm.setup()
    return dm


def reference_place(img: np.ndarray, direction: str) -> np.ndarray:
    """Move a 32×32 image's ink box flush with ``direction`` (numpy, no ink may be lost)."""
    rows, cols = np.nonzero(img)
    sy, sx = DIRECTIONS[direction]
    dy = {-1: -rows.min(), 0: 0, 1: 31 - rows.max()}[sy]
    dx = {-1: -cols.min(), 0: 0, 1: 31 - cols.max()}[sx]
    out = np.zeros_like(img)
    out[rows + dy, cols + dx] = img[rows, cols]
    return out


def test_placement_matches_numpy_reference_and_loses_no_ink(root: Path) -> None:
    dm = make_data(root)
    originals, _ = blob_digits(160, 1)
    padded = np.pad(originals, ((0, 0), (2, 2), (2, 2)))  # MNIST's 28 → 32 centring
    images = dm.splits["test"][0][:, 0].numpy()
    for i, code in enumerate(dm.strata["test"].tolist()):
        name = STRATA[code]
        expected = padded[i] if name == "centred" else reference_place(padded[i], name)
        np.testing.assert_array_equal(images[i], expected, err_msg=f"image {i} ({name})")
        assert images[i].astype(int).sum() == padded[i].astype(int).sum()  # no ink lost
        rows, cols = np.nonzero(images[i])
        sy, sx = DIRECTIONS.get(name, (0, 0))
        touches = {
            "top": rows.min() == 0,
            "bottom": rows.max() == 31,
            "left": cols.min() == 0,
            "right": cols.max() == 31,
        }
        want = {"top": sy < 0, "bottom": sy > 0, "left": sx < 0, "right": sx > 0}
        assert touches == want, (i, name)


def test_strata_are_balanced_over_the_eight_directions() -> None:
    counts = np.bincount(assign_strata(1000, seed=3).numpy(), minlength=9)
    assert counts[0] == 500 and counts[1:].sum() == 500
    assert counts[1:].max() - counts[1:].min() <= 1


def test_test_placements_are_fixed_by_the_placement_seed(root: Path) -> None:
    a, b = make_data(root, seed=0), make_data(root, seed=5)
    assert torch.equal(a.strata["test"], b.strata["test"])
    assert torch.equal(a.splits["test"][0], b.splits["test"][0])
    assert not torch.equal(a.strata["train"], b.strata["train"])  # training placements follow the run seed
    other = make_data(root, seed=0, placement_seed=1)
    assert not torch.equal(a.strata["test"], other.strata["test"])


def test_train_and_val_strata_follow_the_split(root: Path) -> None:
    dm = make_data(root, seed=2)
    assert len(dm.strata["train"]) == len(dm.splits["train"][1]) == 320
    assert len(dm.strata["val"]) == len(dm.splits["val"][1]) == 80
    full = assign_strata(400, seed=2 * 7919 + 1)
    assert torch.equal(dm.strata["val"], full[dm.split_indices["val"]])
    # every training image carries the stratum its pixels show
    x = dm.splits["train"][0][:, 0]
    for img, code in zip(x, dm.strata["train"].tolist()):
        rows, cols = img.nonzero(as_tuple=True)
        on_edge = bool(rows.min() == 0 or rows.max() == 31 or cols.min() == 0 or cols.max() == 31)
        assert on_edge == (code > 0)


def test_only_augment_none_and_32_pixels(root: Path) -> None:
    with pytest.raises(ValueError, match="augment preset 'standard'; valid: none"):
        create_data("mnist_border", root=str(root), augment="standard")
    with pytest.raises(ValueError, match="image_size must be 32"):
        create_data("mnist_border", root=str(root), image_size=64)
