"""Every registered model trains out of the box on the data ``cnnbench models`` lists for
it, with its recipe's data settings (AlexNet: CIFAR-10 resized to 224 on the device)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest
import torch

from cnnbench.data import create_data
from cnnbench.models import MODELS, ImageClassifier, create_model, list_models

FAKE_ROOTS = {"mnist": "mnist_root", "cifar10": "cifar_root"}
MODELS_WITH_DATA = [
    n for n in list_models() if isinstance(MODELS.get(n), type) and issubclass(MODELS.get(n), ImageClassifier)
]


@pytest.mark.parametrize("name", MODELS_WITH_DATA)
def test_default_data_and_recipe_take_a_training_step(
    name: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    cls = MODELS.get(name)
    data_name = cls.default_data
    assert data_name in FAKE_ROOTS, f"no fake files for {name}'s default data {data_name!r}"
    root = request.getfixturevalue(FAKE_ROOTS[data_name])
    # the recipe's data settings as the CLI applies them; a tiny batch keeps 224×224 AlexNet fast
    settings = {**cls.recipe.get("data", {}), "batch_size": 2, "eval_batch_size": 2}
    dm = create_data(data_name, root=str(root), download=False, verify=False, val_size=10, **settings)
    c, h, _ = dm.image_shape
    model = create_model(name, num_classes=dm.num_classes, in_channels=c, input_size=h)
    before = [p.detach().clone() for p in model.parameters()]
    trainer = L.Trainer(
        max_steps=1,
        limit_val_batches=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(model, dm)
    assert trainer.global_step == 1
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))  # it really stepped


def test_alexnet_recipe_resizes_cifar10_on_the_device() -> None:
    assert MODELS.get("alexnet").recipe["data"]["image_size"] == 224
    assert MODELS.get("alexnet2012").recipe["data"]["image_size"] == 227
    dm = create_data("cifar10", image_size=224, download=False)
    assert dm.image_shape == (3, 224, 224) and dm.stored_shape == (3, 32, 32)


def test_summary_of_resized_cifar10_runs_on_the_command_line(tmp_path: Path) -> None:
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "cnnbench",
            "summary",
            "--model",
            "alexnet",
            "--data",
            "cifar10",
            "--data.image_size",
            "224",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert "Traceback" not in run.stderr and "total" in run.stdout and "input_size=224" in run.stdout
