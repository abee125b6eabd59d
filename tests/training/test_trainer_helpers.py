"""Trainer helpers of ``cnnbench.training`` (console, monitors, checkpoints) that exist for speed:
each must keep Lightning's behaviour."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint, RichProgressBar
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from cnnbench.data import MNISTDataModule
from cnnbench.models import DivergedError, create_model
from cnnbench.training import DivergenceGuard, NoProfiler, ProgressBar, SafeModelCheckpoint, Throughput, trainer_extras


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


def test_progress_bar_redraws_at_most_every_interval_and_always_at_the_epoch_end(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    drawn: list[int] = []
    monkeypatch.setattr(RichProgressBar, "on_train_batch_end", lambda self, t, m, o, b, i: drawn.append(i))
    fit(Tiny(), [ProgressBar(min_interval=3600)])
    assert drawn == [0, 5]  # the first batch, then only the last one
    drawn.clear()
    fit(Tiny(), [ProgressBar(min_interval=0)])
    assert drawn == [0, 1, 2, 3, 4, 5]
    drawn.clear()
    fit(Tiny(), [ProgressBar(min_interval=3600)], max_steps=3)  # a fit ending mid-epoch draws its last step
    assert drawn == [0, 2]


def test_divergence_is_caught_at_its_step_on_cpu_and_by_the_flag_when_reading_is_spaced() -> None:
    with pytest.raises(DivergedError, match="training loss became nan at step 3 "):
        fit(Tiny(nan_at=2), [DivergenceGuard()])
    with pytest.raises(DivergedError, match="at or before step 4 "):
        fit(Tiny(nan_at=1), [DivergenceGuard(check_every=4)])  # NaN at step 2, read at step 4
    fit(Tiny(), [DivergenceGuard(check_every=2)])  # finite losses: no error
    with pytest.raises(ValueError, match="check_every"):
        DivergenceGuard(check_every=0)


def test_no_profiler_yields_the_action_name_like_lightnings_default() -> None:
    with NoProfiler().profile("step") as name:
        assert name == "step"
    trainer = L.Trainer(accelerator="cpu", **trainer_extras("runs", "net", 0, progress_bar=False))
    assert isinstance(trainer.profiler, NoProfiler)


def test_checkpoint_state_key_is_the_one_lightning_computes_so_checkpoints_still_match() -> None:
    ckpt = SafeModelCheckpoint(monitor="val/acc", mode="max", save_last=True)
    assert ckpt.state_key == ckpt.state_key == ModelCheckpoint.state_key.fget(ckpt)  # type: ignore[attr-defined]
    assert ckpt.state_key.startswith("SafeModelCheckpoint{'monitor': 'val/acc'")


def test_plain_attribute_fast_path_still_registers_parameters_and_modules() -> None:
    model = create_model("lenet5")
    model.note = "a"
    model.note = 3  # a plain value over a plain attribute: stored directly
    assert model.note == 3 and "note" not in dict(model.named_parameters())
    model.note = nn.Parameter(torch.zeros(2))  # still becomes a parameter
    assert "note" in dict(model.named_parameters()) and "note" not in model.__dict__
    model.extra = 1
    model.extra = nn.Linear(1, 1)  # and a module a submodule
    assert "extra" in dict(model.named_children())


def test_data_module_moves_loader_tuples_without_touching_other_items(tmp_path: Path) -> None:
    dm = MNISTDataModule(root=str(tmp_path))
    x, y = torch.zeros(2, 1, 4, 4, dtype=torch.uint8), torch.zeros(2, dtype=torch.long)
    moved = dm.transfer_batch_to_device((x, y, 7), torch.device("cpu"), 0)
    assert type(moved) is tuple and moved[0] is x and moved[1] is y and moved[2] == 7
    assert type(dm.transfer_batch_to_device([x, y], torch.device("cpu"), 0)) is list
    assert dm.transfer_batch_to_device({"x": x}, torch.device("cpu"), 0)["x"] is x  # the Lightning way


def test_throughput_is_logged_on_logging_steps_only() -> None:
    """Logging a number makes a device tensor of it (a host-device copy that waits for the
    GPU): train/img_s must be logged on the trainer's logging steps, not whenever a window fills."""
    logged: list[int] = []

    class Spy(Tiny):
        def log(self, name: str, value: Any, *args: Any, **kwargs: Any) -> None:
            if name == "train/img_s":
                logged.append(self.trainer.global_step)
            super().log(name, value, *args, **kwargs)

    trainer = L.Trainer(
        max_epochs=3,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        callbacks=[Throughput()],
        log_every_n_steps=4,
        enable_progress_bar=False,
    )
    trainer.fit(Spy(), tiny_loader())  # 6 batches an epoch: 18 steps
    assert logged == [4, 8, 12, 16]
