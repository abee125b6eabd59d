"""Issue 19: ``cnnbench fit --seed_everything N`` seeds the data too (train/val split, sample
order, augmentation), unless ``--data.seed`` is given; both seeds are recorded in config.yaml
and the checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from cli.test_cli import FAST
from fakes import data_args

from cnnbench.cli import main


def fit(root: Path, run_dir: Path, *flags: str) -> dict[str, list]:
    """A 1-step CLI fit with the standard augmentation; what its data seed decided."""
    record = run_dir / "data.json"
    probe = json.dumps({"class_path": "probes.RecordData", "init_args": {"path": str(record)}})
    args = ["fit", "--model", "lenet5", *data_args(root), "--data.augment=standard", *FAST]
    args += ["--trainer.max_steps=1", f"--trainer.default_root_dir={run_dir}", f"--trainer.callbacks+={probe}"]
    assert main([*args, *flags]) == 0
    return json.loads(record.read_text())


def test_seed_everything_seeds_split_order_and_augmentation_unless_data_seed_is_given(
    mnist_root: Path, workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    one = fit(mnist_root, workdir / "a", "--seed_everything=1")
    assert fit(mnist_root, workdir / "b", "--seed_everything=1") == one  # the same seed: the same data
    two = fit(mnist_root, workdir / "c", "--seed_everything=2")
    for part in ("val_split", "first_batch_labels", "augmentation"):
        assert two[part] != one[part], f"{part} ignores --seed_everything"
    assert fit(mnist_root, workdir / "d", "--seed_everything=2", "--data.seed=1") == one  # an explicit data seed wins
    run = workdir / "c" / "lenet5" / "version_0"
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["seed_everything"] == 2 and config["data"]["init_args"]["seed"] == 2
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["datamodule_hyper_parameters"]["seed"] == 2 and ckpt["cnnbench"]["seed"] == "2"
