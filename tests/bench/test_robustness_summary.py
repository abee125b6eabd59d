"""The edge probe's summary numbers (the report's ``edge acc`` and the distance moved) against a
hand computation on images whose bounding boxes are known.

The per-direction accuracies were tested; their mean (what the report shows) and the
distance moved were not: mutation testing found that multiplying instead of dividing, or a
norm over the whole batch, went unnoticed.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from cnnbench.bench.robustness import EDGE_DIRECTIONS, edge_probe

SIDE = 12
# (top, left) of a 2×2 blob in each image: its bounding box is rows top..top+1, cols left..left+1
BLOBS = [(0, 0), (3, 5), (10, 10), (5, 1), (7, 8), (2, 9)]


def image(top: int, left: int) -> torch.Tensor:
    x = torch.zeros(1, SIDE, SIDE)
    x[:, top : top + 2, left : left + 2] = 200.0
    return x


def test_edge_probe_mean_accuracy_and_distance_moved_equal_a_hand_computation() -> None:
    # class 0 likes ink in the top half, 1 in the left half, 2 in the bottom-right quarter: the answer moves
    region = torch.zeros(3, SIDE, SIDE)
    region[0, : SIDE // 2], region[1, :, : SIDE // 2], region[2, SIDE // 2 :, SIDE // 2 :] = 1.0, 1.05, 1.1
    model = nn.Sequential(nn.Flatten(), nn.Linear(SIDE * SIDE, 3, bias=False))
    model[1].weight.data = region.flatten(1)
    images = torch.stack([image(t, left) for t, left in BLOBS])
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    probe = edge_probe(model, images, labels, lambda x: x / 255.0)
    accs, distances = {}, {}
    for name, (sy, sx) in EDGE_DIRECTIONS.items():
        correct, moved = 0, []
        for (top, left), label in zip(BLOBS, labels.tolist()):
            dy = {-1: -top, 0: 0, 1: SIDE - 2 - top}[sy]  # until the box touches that edge
            dx = {-1: -left, 0: 0, 1: SIDE - 2 - left}[sx]
            with torch.no_grad():
                pred = int(model((image(top + dy, left + dx) / 255.0)[None]).argmax(1))
            correct += pred == label
            moved.append(math.hypot(dy, dx))
        accs[name], distances[name] = correct / len(BLOBS), sum(moved) / len(moved)
    assert probe["acc"] == pytest.approx(accs, rel=1e-6)  # float32 means
    assert probe["acc_mean"] == pytest.approx(sum(accs.values()) / len(accs), rel=1e-6)
    assert len(set(accs.values())) > 1  # directions disagree: the mean is not any one of them
    assert probe["mean_shift_px"] == pytest.approx(distances, rel=1e-6)
    assert probe["lost_ink"] == 0.0
