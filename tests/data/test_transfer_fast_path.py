"""The data module moves loader tuples to the device itself (for speed); other batches go the Lightning way."""

from __future__ import annotations

from pathlib import Path

import torch

from cnnbench.data import MNISTDataModule


def test_data_module_moves_loader_tuples_without_touching_other_items(tmp_path: Path) -> None:
    dm = MNISTDataModule(root=str(tmp_path))
    x, y = torch.zeros(2, 1, 4, 4, dtype=torch.uint8), torch.zeros(2, dtype=torch.long)
    moved = dm.transfer_batch_to_device((x, y, 7), torch.device("cpu"), 0)
    assert type(moved) is tuple and moved[0] is x and moved[1] is y and moved[2] == 7
    assert type(dm.transfer_batch_to_device([x, y], torch.device("cpu"), 0)) is list
    assert dm.transfer_batch_to_device({"x": x}, torch.device("cpu"), 0)["x"] is x  # the Lightning way
