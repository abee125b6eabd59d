import torch
from torch import nn

from cnnbench.bench.robustness import evaluate_robustness, shift_images


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
        self.fc = nn.Linear(64, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.flatten(1))


def data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (300, 1, 8, 8), generator=g).float()
    return images, torch.randint(0, 3, (300,), generator=g)


def test_shift_images_zero_and_circular() -> None:
    x = torch.arange(9.0).reshape(1, 1, 3, 3)
    assert shift_images(x, 1, 0, "zero")[0, 0].tolist() == [[0, 0, 0], [0, 1, 2], [3, 4, 5]]
    assert shift_images(x, 0, -1, "zero")[0, 0].tolist() == [[1, 2, 0], [4, 5, 0], [7, 8, 0]]
    assert torch.equal(shift_images(x, 1, 1, "circular"), torch.roll(x, (1, 1), (-2, -1)))


def test_exactly_invariant_model_has_consistency_one() -> None:
    torch.manual_seed(0)
    images, labels = data()
    result = evaluate_robustness(ShiftInvariant(), images, labels, lambda x: x / 255, shifts=[1, 2, 3], fill="circular")
    assert result["shift_consistency"] == {1: 1.0, 2: 1.0, 3: 1.0}
    assert all(result["shift_acc"][s] == result["acc"] for s in (1, 2, 3))


def test_position_sensitive_model_is_less_consistent() -> None:
    torch.manual_seed(0)
    images, labels = data()
    result = evaluate_robustness(PositionSensitive(), images, labels, lambda x: x / 255, shifts=[1, 2], fill="circular")
    assert result["shift_consistency"][1] < 0.9 and result["shift_consistency"][2] < 0.9
    assert set(result["border_acc"]) == {
        "left",
        "right",
        "top",
        "bottom",
        "top_left",
        "top_right",
        "bottom_left",
        "bottom_right",
    }
    assert result["border"] == 2
