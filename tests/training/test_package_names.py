"""``cnnbench.training`` was one module; it is a package now. Every public name the module had
stays importable from the package for one release, as the very object its new module defines,
and the modules it replaced are gone (no second copy that could drift)."""

from __future__ import annotations

import importlib

import pytest

# name → the module that defines it now; the names are those of cnnbench/training.py at be3127a
OLD_NAMES = {
    "weights_finite": "cnnbench.training.monitors",
    "DivergenceGuard": "cnnbench.training.monitors",
    "Throughput": "cnnbench.training.monitors",
    "SafeModelCheckpoint": "cnnbench.training.checkpoints",
    "InterruptCheckpoint": "cnnbench.training.checkpoints",
    "RNGState": "cnnbench.training.resume",
    "ResumableCSVLogger": "cnnbench.training.resume",
    "ResumeState": "cnnbench.training.resume",
    "NoProfiler": "cnnbench.training.console",
    "ProgressBar": "cnnbench.training.console",
    "WandbSettings": "cnnbench.training.wandb",
    "wandb_credentials_configured": "cnnbench.training.wandb",
    "make_wandb_logger": "cnnbench.training.wandb",
    "trainer_extras": "cnnbench.training.trainer",
    "next_version": "cnnbench.training.trainer",
    "release_distributed": "cnnbench.training.trainer",
    # imported by the old module, so importable from it too
    "DivergedError": "cnnbench.models.base",
    "AtomicCheckpointIO": "cnnbench.checkpoint",
}


@pytest.mark.parametrize("name", sorted(OLD_NAMES))
def test_every_old_name_is_importable_from_the_package_as_the_new_object(name: str) -> None:
    training = importlib.import_module("cnnbench.training")
    assert getattr(training, name) is getattr(importlib.import_module(OLD_NAMES[name]), name)
    assert name in training.__all__


@pytest.mark.parametrize("old", ["cnnbench.train_step", "cnnbench.console", "cnnbench.wandb_logger"])
def test_the_moved_modules_are_gone(old: str) -> None:
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module(old)
