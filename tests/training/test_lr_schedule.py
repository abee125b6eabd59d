"""The learning-rate schedule steps once per optimizer step, on Lightning's eager step and in the
captured step's engine, and follows its formula (OneCycle, cosine) computed here by hand.

20 steps of 15 batches an epoch: the schedule must keep moving across the epoch boundary
(a schedule stepped per epoch would hold the lr for 15 steps).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import lightning as L
import pytest

import cnnbench.training.captured_step as ts
from cnnbench.data import MNISTDataModule
from cnnbench.models import create_model
from cnnbench.training import trainer_extras

STEPS = 20


def cos_anneal(start: float, end: float, pct: float) -> float:
    return end + (start - end) / 2 * (math.cos(math.pi * pct) + 1)


def onecycle(step: int, max_lr: float, total: int = STEPS, pct_start: float = 0.15) -> tuple[float, float]:
    """torch's OneCycleLR (cos annealing, div_factor 25, final_div_factor 1e4, momentum 0.95 ↔ 0.85)."""
    initial, peak_end = max_lr / 25, pct_start * total - 1
    if step <= peak_end:
        pct = step / peak_end
        return cos_anneal(initial, max_lr, pct), cos_anneal(0.95, 0.85, pct)
    pct = (step - peak_end) / (total - 1 - peak_end)
    return cos_anneal(max_lr, initial / 1e4, pct), cos_anneal(0.85, 0.95, pct)


def cosine(step: int, base_lr: float, total: int = STEPS) -> float:
    return base_lr * (1 + math.cos(math.pi * step / total)) / 2


class _Record(L.Callback):
    """The lr (and momentum) each optimizer step used: the param group's before the step and,
    with the engine, the value in the device tensor its update read."""

    def __init__(self) -> None:
        self.group: list[tuple[float, float | None]] = []
        self.engine: list[tuple[float, float | None]] = []

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, i: int) -> None:
        group = trainer.optimizers[0].param_groups[0]
        self.group.append((group["lr"], group.get("momentum")))

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        engine = getattr(pl_module, "step_engine", None)
        if engine is not None:
            hyper = engine.hyper[0]
            momentum = float(hyper["momentum"]) if "momentum" in hyper else None
            self.engine.append((float(hyper["lr"]), momentum))


@pytest.mark.parametrize(
    ("mode", "model"),
    [
        ("eager", {"optimizer": "sgd", "lr": 0.05, "scheduler": "onecycle"}),
        ("graph", {"optimizer": "sgd", "lr": 0.05, "scheduler": "onecycle"}),
        ("graph", {"optimizer": "adamw", "lr": 3e-3, "scheduler": "cosine"}),
    ],
    ids=["sgd-onecycle-eager", "sgd-onecycle-engine", "adamw-cosine-engine"],
)
def test_lr_at_every_step_follows_the_schedule_formula(
    mode: str, model: dict[str, Any], mnist_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ts, "capture_enabled", lambda: False)  # the engine's step runs eagerly on the CPU
    dm = MNISTDataModule(root=str(mnist_root), download=False, val_size=100, batch_size=32)  # 15 batches an epoch
    record = _Record()
    extras = trainer_extras(str(tmp_path), "lenet5", 0, progress_bar=False, train_step=mode)
    extras["callbacks"].append(record)
    trainer = L.Trainer(
        max_steps=STEPS,
        accelerator="cpu",
        enable_model_summary=False,
        enable_progress_bar=False,
        num_sanity_val_steps=0,
        limit_val_batches=1,
        **extras,
    )
    trainer.fit(create_model("lenet5", **model), dm)
    assert trainer.global_step == STEPS and trainer.num_training_batches == 15  # an epoch boundary at step 15
    if model["scheduler"] == "onecycle":
        expected = [onecycle(s, model["lr"]) for s in range(STEPS)]
    else:
        expected = [(cosine(s, model["lr"]), None) for s in range(STEPS)]
    assert [lr for lr, _ in record.group] == pytest.approx([lr for lr, _ in expected], rel=1e-9)
    if model["optimizer"] == "sgd":
        assert [m for _, m in record.group] == pytest.approx([m for _, m in expected], rel=1e-9)
    if mode == "graph":
        assert len(record.engine) == STEPS  # the engine ran every step, with the scheduled values
        assert [lr for lr, _ in record.engine] == pytest.approx([lr for lr, _ in expected], rel=1e-6)
        if model["optimizer"] == "sgd":
            assert [m for _, m in record.engine] == pytest.approx([m for _, m in expected], rel=1e-6)
