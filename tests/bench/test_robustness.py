"""Robustness metrics against plain-torch computations of their definitions, image by image."""

import itertools

import pytest
import torch
from torch import nn

from cnnbench.bench.robustness import (
    EDGE_DIRECTIONS,
    edge_offsets,
    edge_probe,
    evaluate_robustness,
    random_offsets,
    shift_each,
)


class ShiftInvariant(nn.Module):
    """1×1 convolution then global average pooling: exactly invariant to circular shifts."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 1)
        self.fc = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.conv(x)).mean(dim=(2, 3)))


class PositionSensitive(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc = nn.Linear(64, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.flatten(1))


def data(n: int = 60) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 1, 8, 8), generator=g).float()
    return images, torch.randint(0, 3, (n,), generator=g)


def norm(x: torch.Tensor) -> torch.Tensor:
    return x / 255 - 0.5


def ref_shift(img: torch.Tensor, dy: int, dx: int, fill: str) -> torch.Tensor:
    """One image (C, H, W) shifted by explicit slicing (zero) or torch.roll (circular)."""
    if fill == "circular":
        return torch.roll(img, shifts=(dy, dx), dims=(1, 2))
    out = torch.zeros_like(img)
    h, w = img.shape[1:]
    out[:, max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = img[
        :, max(-dy, 0) : h + min(-dy, 0), max(-dx, 0) : w + min(-dx, 0)
    ]
    return out


def ref_predict(model: nn.Module, img: torch.Tensor) -> int:
    with torch.no_grad():
        return int(model(norm(img)[None]).argmax(-1))


@pytest.mark.parametrize("fill", ["zero", "circular"])
def test_shift_each_matches_per_image_reference(fill: str) -> None:
    images, _ = data(20)
    dy, dx = torch.randint(-5, 6, (20,)), torch.randint(-5, 6, (20,))
    out = shift_each(images, dy, dx, fill)
    for i in range(20):
        assert torch.equal(out[i], ref_shift(images[i], int(dy[i]), int(dx[i]), fill)), (i, dy[i], dx[i])
    assert shift_each(torch.arange(9.0).reshape(1, 1, 3, 3), torch.tensor([1]), torch.tensor([0]), "zero")[
        0, 0
    ].tolist() == [[0, 0, 0], [0, 1, 2], [3, 4, 5]]  # down by one, by hand


def test_offsets_cover_both_signs_and_axes_and_are_seeded() -> None:
    o = random_offsets(2000, 3, 4, seed=1)
    assert o.shape == (4, 2000, 2) and int(o.min()) == -3 and int(o.max()) == 3
    for axis in (0, 1):
        counts = torch.bincount(o[..., axis].flatten() + 3, minlength=7).float()
        assert (counts / counts.sum() - 1 / 7).abs().max() < 0.02  # uniform over [-3, 3]
    assert not torch.equal(o[0], o[1])  # copies independent
    assert torch.equal(o, random_offsets(2000, 3, 4, seed=1)) and not torch.equal(o, random_offsets(2000, 3, 4, 2))


@pytest.mark.parametrize("fill", ["zero", "circular"])
def test_consistency_and_shift_accuracy_equal_the_definition_image_by_image(fill: str) -> None:
    images, labels = data()
    model = PositionSensitive()
    k, copies, seed = 2, 3, 7
    result = evaluate_robustness(
        model, images, labels, norm, shifts=[k], fills=[fill], copies=copies, seed=seed, edge=False, batch_size=16
    )
    offsets = random_offsets(len(labels), k, copies, seed)
    agree = pairs = correct = 0
    for i in range(len(labels)):
        preds = [ref_predict(model, ref_shift(images[i], int(o[i, 0]), int(o[i, 1]), fill)) for o in offsets]
        for a, b in itertools.combinations(preds, 2):
            agree, pairs = agree + (a == b), pairs + 1
        correct += sum(p == int(labels[i]) for p in preds)
    assert result["shift"][fill]["consistency"][k] == pytest.approx(agree / pairs, abs=1e-6)
    assert result["shift"][fill]["acc"][k] == pytest.approx(correct / (copies * len(labels)), abs=1e-6)
    assert 0.2 < agree / pairs < 0.95  # the model really is position-sensitive: the check has teeth
    assert result["pairs"] == 3 and result["definition"] == "zhang2019"


def test_consistency_estimates_the_exact_probability_over_all_offset_pairs() -> None:
    images, labels = data(40)
    model = PositionSensitive()
    k = 1
    offsets = list(itertools.product(range(-k, k + 1), repeat=2))  # all 9 (dy, dx)
    exact = 0.0
    for i in range(len(labels)):
        preds = [ref_predict(model, ref_shift(images[i], dy, dx, "circular")) for dy, dx in offsets]
        exact += sum(a == b for a in preds for b in preds) / len(preds) ** 2
    exact /= len(labels)
    result = evaluate_robustness(model, images, labels, norm, shifts=[k], fills=["circular"], copies=40, edge=False)
    assert result["shift"]["circular"]["consistency"][k] == pytest.approx(exact, abs=0.04)


def test_exactly_invariant_model_has_consistency_one() -> None:
    torch.manual_seed(0)
    images, labels = data()
    result = evaluate_robustness(ShiftInvariant(), images, labels, norm, shifts=[1, 3], fills=["circular"])
    assert result["shift"]["circular"]["consistency"] == {1: 1.0, 3: 1.0}
    assert result["shift"]["circular"]["acc"] == {1: result["acc"], 3: result["acc"]}


def digits(n: int = 30, size: int = 12) -> torch.Tensor:
    """Zero background with a random block of ink somewhere inside (some images empty)."""
    g = torch.Generator().manual_seed(3)
    images = torch.zeros(n, 1, size, size)
    for i in range(1, n):
        y0, x0 = (int(v) for v in torch.randint(0, size - 3, (2,), generator=g))
        hh, ww = (int(v) for v in torch.randint(1, 4, (2,), generator=g))
        images[i, 0, y0 : y0 + hh, x0 : x0 + ww] = torch.randint(1, 256, (hh, ww), generator=g).float()
    return images


@pytest.mark.parametrize("direction", list(EDGE_DIRECTIONS))
def test_edge_shift_loses_no_ink_and_matches_a_bounding_box_reference(direction: str) -> None:
    images = digits()
    offsets = edge_offsets(images, direction)
    shifted = shift_each(images, offsets[:, 0], offsets[:, 1], "zero")
    sy, sx = EDGE_DIRECTIONS[direction]
    for i, img in enumerate(images):
        nz = torch.nonzero(img[0])
        if len(nz) == 0:
            assert torch.equal(shifted[i], img)
            continue
        top, bottom, left, right = int(nz[:, 0].min()), int(nz[:, 0].max()), int(nz[:, 1].min()), int(nz[:, 1].max())
        dy = {-1: -top, 0: 0, 1: 11 - bottom}[sy]
        dx = {-1: -left, 0: 0, 1: 11 - right}[sx]
        assert torch.equal(shifted[i], ref_shift(img, dy, dx, "zero")), (i, dy, dx)
        assert float(shifted[i].sum()) == float(img.sum())  # no ink lost
    model = PositionSensitive()
    model.fc = nn.Linear(144, 3)
    labels = torch.randint(0, 3, (len(images),))
    probe = edge_probe(model, images, labels, norm)
    assert probe["lost_ink"] == 0.0
    expected = sum(ref_predict(model, shifted[i]) == int(labels[i]) for i in range(len(labels))) / len(labels)
    assert probe["acc"][direction] == pytest.approx(expected)
    assert probe["mean_shift_px"][direction] > 0
