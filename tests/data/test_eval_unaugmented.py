"""Validation and test batches are never augmented, on both loaders, under a running Trainer
(the uint8 fast path finished on the device) and in a plain loop.

The data module augments its training batches (``standard``: random 2-pixel shifts; ``strong``
adds rotation and zoom), so an augmented evaluation batch would differ from the reference:
the split's images normalized by hand, in the split's order.
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch

from cnnbench.data import MNISTDataModule
from cnnbench.models import create_model

MNIST_MEAN, MNIST_STD = 0.1307, 0.3081


class _Seen(L.Callback):
    """The batches the model's validation and test steps get (after the batch hooks)."""

    def __init__(self) -> None:
        self.val: list[torch.Tensor] = []
        self.test: list[torch.Tensor] = []
        self.train: list[torch.Tensor] = []

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: object, i: int) -> None:
        self.train.append(batch[0].clone())  # type: ignore[index]

    def on_validation_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: object, i: int, *_: int
    ) -> None:
        self.val.append(batch[0].clone())  # type: ignore[index]

    def on_test_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: object, i: int, *_: int
    ) -> None:
        self.test.append(batch[0].clone())  # type: ignore[index]


def by_hand(images: torch.Tensor) -> torch.Tensor:
    return ((images.double() / 255 - MNIST_MEAN) / MNIST_STD).float()


@pytest.mark.parametrize(
    ("loader", "augment"),
    [("tensor", "standard"), ("torchvision", "standard"), ("tensor", "strong"), ("torchvision", "strong")],
)
def test_validation_and_test_batches_equal_the_unaugmented_images(
    loader: str, augment: str, mnist_root: Path, tmp_path: Path
) -> None:
    dm = MNISTDataModule(
        root=str(mnist_root), val_size=48, batch_size=16, augment=augment, loader=loader, num_workers=0, download=False
    )
    seen = _Seen()
    trainer = L.Trainer(
        max_steps=2,
        num_sanity_val_steps=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[seen],
        default_root_dir=tmp_path,
        val_check_interval=2,
    )
    model = create_model("lenet5")
    trainer.fit(model, dm)
    trainer.test(model, dm, verbose=False)
    val_images, test_images = dm.splits["val"][0], dm.splits["test"][0]
    # the data can tell: these images, augmented as training batches are, would differ
    assert not torch.equal(dm.augmentation(val_images, seed=0).float(), val_images.float())
    assert len(seen.train) == 2 and seen.train[0].shape == (16, 1, 32, 32)
    torch.testing.assert_close(torch.cat(seen.val), by_hand(val_images), atol=1e-5, rtol=0)
    torch.testing.assert_close(torch.cat(seen.test), by_hand(test_images), atol=1e-5, rtol=0)
    # and outside a Trainer (a plain loop over the same module)
    plain = torch.cat([x for x, _ in dm.val_dataloader()])
    torch.testing.assert_close(plain, by_hand(val_images), atol=1e-5, rtol=0)
