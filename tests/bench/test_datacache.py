"""The fork server's data cache: read once, and every seed still gets its own train/val split."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from cnnbench.bench import datacache
from cnnbench.data import create_data


@pytest.fixture(autouse=True)
def empty_cache() -> Any:
    datacache.clear()
    yield
    datacache.clear()


def test_cached_modules_split_like_modules_that_read_their_files(
    mnist_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    block = {"name": "mnist", "root": str(mnist_root), "download": False, "val_size": 100}
    assert datacache.warm(block) is None
    args = {k: v for k, v in block.items() if k != "name"}
    reads = []
    for seed in (0, 1):
        reference = create_data("mnist", seed=seed, **args)  # reads and splits the files itself
        reference.setup()
        cached = create_data("mnist", seed=seed, **args)
        assert datacache.attach(cached, block)
        cached.root = Path("/nonexistent")  # any file read would now fail
        cached.setup()
        for split in ("train", "val", "test"):
            assert torch.equal(cached.splits[split][0], reference.splits[split][0])
            assert torch.equal(cached.splits[split][1], reference.splits[split][1])
        reads.append(cached.splits["val"][1])
    assert not torch.equal(reads[0], reads[1])  # seed 0 and seed 1: different validation images


def test_an_unreadable_block_is_not_cached_and_says_why(tmp_path: Path) -> None:
    block = {"name": "mnist", "root": str(tmp_path / "missing"), "download": False}
    error = datacache.warm(block)
    assert error is not None and "missing" in error
    assert not datacache.attach(create_data("mnist", root=str(tmp_path / "missing"), download=False), block)
