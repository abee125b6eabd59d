"""A tiny LightningModule and a one-epoch CPU fit, shared by the tests of the training callbacks."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


class Tiny(L.LightningModule):
    def __init__(self, nan_at: int | None = None) -> None:
        super().__init__()
        self.layer = nn.Linear(4, 2)
        self.nan_at = nan_at

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        loss = nn.functional.cross_entropy(self.layer(batch[0]), batch[1])
        return loss * float("nan") if self.global_step == self.nan_at else loss

    def configure_optimizers(self) -> Any:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def tiny_loader(batches: int = 6) -> DataLoader[Any]:
    return DataLoader(TensorDataset(torch.randn(batches * 4, 4), torch.randint(0, 2, (batches * 4,))), batch_size=4)


def fit(model: L.LightningModule, callbacks: list[Any], **kwargs: Any) -> L.Trainer:
    trainer = L.Trainer(
        max_epochs=1,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        callbacks=callbacks,
        **kwargs,
    )
    trainer.fit(model, tiny_loader())
    return trainer
