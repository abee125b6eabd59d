"""Models a package adds to cnnbench: plain ``nn.Module`` code, no cnnbench base class.

cnnbench wraps each one into its ``ImageClassifier`` (loss, metrics, optimizer, schedule)
with a default recipe. A model takes ``num_classes``; it takes ``in_channels`` (and
``input_size``, when its layers depend on it) to fit the data set's images, and ``pool`` / ``padding`` (``padding_mode``)
to be usable in an ablation grid. cnnbench fills these in from the data and the grid.
"""

from __future__ import annotations

import torch
from torch import nn

from cnnbench.models.layers import make_conv, make_pool


class TinyCNN(nn.Module):
    """Two conv-pool blocks and a linear head, built from cnnbench's pool and padding factories.

    Args:
        num_classes: Number of output logits.
        in_channels: Channels of the input images.
        pool: Pooling operator (cnnbench's names: max, avg, blur ...).
        padding: Convolution padding rule (valid, same, full or pixels).
        padding_mode: Value of the padded border pixels.
        width: Channels of the first convolution (the second has twice as many).
    """

    # optional: the data set `cnnbench fit --model tiny_cnn` uses, and its training recipe
    default_data = "mnist"
    recipe = {"trainer": {"max_epochs": 2}, "data": {"batch_size": 128}}

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 1,
        pool: str = "max",
        padding: str | int = "same",
        padding_mode: str = "zeros",
        width: int = 8,
    ) -> None:
        super().__init__()
        conv = {"padding": padding, "padding_mode": padding_mode}
        self.features = nn.Sequential(
            make_conv(in_channels, width, 3, **conv),
            nn.ReLU(),
            make_pool(pool, 2, channels=width),
            make_conv(width, 2 * width, 3, **conv),
            nn.ReLU(),
            make_pool(pool, 2, channels=2 * width),
        )
        self.head = nn.Sequential(nn.Flatten(), nn.LazyLinear(num_classes))  # sized by cnnbench's first batch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def tiny_mlp(num_classes: int = 10, hidden: int = 64) -> nn.Module:
    """A builder function: a two-layer perceptron for any image size (no pool: not for grids)."""
    return nn.Sequential(nn.Flatten(), nn.LazyLinear(hidden), nn.ReLU(), nn.Linear(hidden, num_classes))
