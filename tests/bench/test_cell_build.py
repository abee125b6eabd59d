"""What a grid cell builds (``cnnbench.bench.cell.build``): its own axes, data block and model arguments
reach the data module and the model, and a plugin without ``padding_mode`` is built without it only
when the cell asks for zeros (torch's default), never silently for another mode.

Fast: ``build`` is called directly on hand-written run dicts (the shape ``launch_cell`` sends a forked
cell); nothing is trained or read (MNIST is only constructed, its files are never opened). The
expected values are the run dict's own coordinates, set to values that differ from every default.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from cnnbench.bench.cell import build
from cnnbench.data import SyntheticDataModule
from cnnbench.models import MODELS, register_model


def run_dict(data: dict[str, Any], **cell: Any) -> dict[str, Any]:
    """A run as the grid runner sends it: the cell's coordinates and the grid's data block."""
    coords = {
        "model": "lenet5",
        "model_args": {},
        "pool": "max",
        "padding": "same",
        "padding_mode": "zeros",
        "precision": "32-true",
        "devices": 1,
        "seed": 0,
    }
    return {"run_id": "r", "cell": {**coords, **cell}, "grid": {"name": "g", "data": data}}


def mnist(root: Path, **extra: Any) -> dict[str, Any]:
    return {"name": "mnist", "root": str(root), "download": False, "verify": False, **extra}


# 4 classes, 3 channels, 28 px: none of them the models' defaults (10, 1, 32)
SYNTHETIC = {"name": "synthetic", "classes": 4, "channels": 3, "size": 28, "train_images": 8, "test_images": 4}


@pytest.mark.parametrize("augment", ["none", "strong"])  # MNIST's default preset is "standard"
def test_the_augment_axis_reaches_the_data_module(tmp_path: Path, augment: str) -> None:
    dm, _ = build(run_dict(mnist(tmp_path), augment=augment))
    assert dm.hparams["augment"] == augment
    assert dm.augmentation is type(dm).augment_presets[augment]


def test_a_cell_without_the_augment_axis_keeps_the_data_blocks_preset(tmp_path: Path) -> None:
    # results written before the axis existed: the preset came from the grid's data block
    dm, _ = build(run_dict(mnist(tmp_path, augment="strong")))
    assert dm.hparams["augment"] == "strong"
    assert dm.augmentation is type(dm).augment_presets["strong"]


def test_the_data_block_and_the_cell_seed_reach_the_data_module(tmp_path: Path) -> None:
    dm, _ = build(run_dict(mnist(tmp_path, val_size=123, batch_size=7), augment="none", seed=41))
    assert type(dm).__name__ == "MNISTDataModule"
    assert (str(dm.root), dm.val_size, dm.seed, dm.hparams["batch_size"]) == (str(tmp_path), 123, 41, 7)
    dm, _ = build(run_dict(SYNTHETIC, augment="none", seed=5))
    assert isinstance(dm, SyntheticDataModule) and dm.seed == 5


def test_the_model_gets_the_cells_knobs_its_model_args_and_the_data_sets_shape() -> None:
    run = run_dict(
        SYNTHETIC, augment="none", pool="avg", padding="valid", padding_mode="reflect", model_args={"lr": 0.123}
    )
    _, model = build(run)
    h = model.hparams
    assert (h.num_classes, h.in_channels, h.input_size) == (4, 3, 28)
    assert (h.pool, h.padding, h.padding_mode, h.lr) == ("avg", "valid", "reflect", 0.123)
    assert model(torch.zeros(2, 3, 28, 28)).shape == (2, 4)
    assert {m.padding_mode for m in model.modules() if isinstance(m, nn.Conv2d)} == {"reflect"}


@pytest.fixture
def plugins(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Plugin models registered for one test only."""
    monkeypatch.setattr(MODELS, "_entries", dict(MODELS._entries))
    monkeypatch.setattr(MODELS, "_originals", dict(MODELS._originals))

    @register_model("cell_build_no_mode")
    def no_mode(num_classes: int = 10, pool: str = "max", padding: str = "same") -> nn.Module:
        return nn.Sequential(nn.Flatten(), nn.LazyLinear(num_classes))

    @register_model("cell_build_reflect_default")
    def reflect_default(
        num_classes: int = 10, pool: str = "max", padding: str = "same", padding_mode: str = "reflect"
    ) -> nn.Module:
        return nn.Sequential(nn.Flatten(), nn.LazyLinear(num_classes))

    yield


def test_a_plugin_without_padding_mode_is_built_without_it_for_zeros(plugins: None) -> None:
    _, model = build(run_dict(SYNTHETIC, augment="none", model="cell_build_no_mode", padding_mode="zeros"))
    assert "padding_mode" not in model.hparams and model.hparams.num_classes == 4


@pytest.mark.parametrize("mode", ["reflect", "circular"])
def test_a_plugin_without_padding_mode_is_refused_another_mode(plugins: None, mode: str) -> None:
    # dropping the argument would train a zero-padded model under a "reflect" label
    with pytest.raises(ValueError, match="unknown argument 'padding_mode'"):
        build(run_dict(SYNTHETIC, augment="none", model="cell_build_no_mode", padding_mode=mode))


def test_a_plugin_taking_padding_mode_gets_zeros_not_its_own_default(plugins: None) -> None:
    _, model = build(run_dict(SYNTHETIC, augment="none", model="cell_build_reflect_default", padding_mode="zeros"))
    assert model.hparams.padding_mode == "zeros"
