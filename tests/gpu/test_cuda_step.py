"""The captured training step on a real GPU. Every test here skips without CUDA (and says
so in the summary): run ``python3 -m pytest tests/gpu -ra`` on a machine with one."""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch

from cnnbench.data import create_data
from cnnbench.models import create_model
from cnnbench.training import trainer_extras
from cnnbench.training.captured_step import CapturedStep

pytestmark = pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs CUDA: the captured step runs on a GPU only"
)


def fit(
    mode: str,
    steps: int = 30,
    precision: str = "32-true",
    callbacks: list[Any] | None = None,
    dm: Any = None,
    **model: Any,
) -> tuple[L.Trainer, Any]:
    L.seed_everything(0, verbose=False)
    dm = dm or create_data("synthetic", channels=1, size=32, train_images=4096, batch_size=128, on_device=True)
    net = create_model("lenet5", **model)
    with tempfile.TemporaryDirectory() as run_dir:
        extras = trainer_extras(run_dir, "lenet5", 0, progress_bar=False, train_step=mode)
        extras["callbacks"] += callbacks or []
        trainer = L.Trainer(
            max_steps=steps,
            accelerator="gpu",
            devices=1,
            precision=precision,
            limit_val_batches=0,
            num_sanity_val_steps=0,
            enable_model_summary=False,
            log_every_n_steps=10,
            **extras,
        )
        trainer.fit(net, dm)
    return trainer, net


def step_callback(trainer: L.Trainer) -> CapturedStep:
    return next(c for c in trainer.callbacks if isinstance(c, CapturedStep))  # type: ignore[attr-defined]


@pytest.mark.parametrize("model", [{}, {"optimizer": "adam", "lr": 3e-3}], ids=["sgd-onecycle", "adam-onecycle"])
def test_graph_and_eager_steps_give_the_same_weights(model: dict[str, Any]) -> None:
    eager_trainer, eager = fit("eager", **model)
    graph_trainer, graph = fit("graph", **model)
    assert step_callback(graph_trainer).summary == {"steps": 30, "captured": True}
    assert step_callback(eager_trainer).summary == {}
    for (name, a), b in zip(eager.state_dict().items(), graph.state_dict().values()):
        torch.testing.assert_close(b, a, rtol=1e-3, atol=1e-4, msg=name)


def test_bf16_mixed_runs_the_captured_forward_under_autocast() -> None:
    seen: set[torch.dtype] = set()

    class Watch(L.Callback):
        def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
            pl_module.classifier[0].register_forward_hook(lambda m, i, o: seen.add(o.dtype))  # type: ignore[index]

    trainer, _ = fit("graph", precision="bf16-mixed", callbacks=[Watch()])
    assert step_callback(trainer).summary["captured"] and seen == {torch.bfloat16}


@pytest.mark.parametrize("augment", ["none", "standard"])
def test_no_host_device_sync_between_logging_steps(augment: str, mnist_root: Path) -> None:
    """Neither the captured step nor the data path (MNIST's random crops, drawn on the CPU)
    makes the host wait for the GPU between logging steps."""
    watched: list[bool] = []

    class Count(L.Callback):
        def on_train_batch_start(self, trainer: L.Trainer, pl_module: Any, batch: Any, batch_idx: int) -> None:
            # watched: from this batch's start to the next one's, away from the capture, the
            # logging steps and the epoch's first and last batch (epoch-end metrics are read there)
            steady = (
                trainer.global_step > 5
                and (trainer.global_step + 1) % 10 not in (0, 1)
                and 0 < batch_idx < trainer.num_training_batches - 1
            )
            watched.append(steady)
            torch.cuda.set_sync_debug_mode("warn" if steady else "default")

        def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
            torch.cuda.set_sync_debug_mode("default")

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dm = create_data(
            "mnist", root=str(mnist_root), download=False, verify=False, val_size=100, batch_size=32, augment=augment
        )
        fit("graph", steps=60, callbacks=[Count()], dm=dm)
    syncs = [str(w.message) for w in caught if "synchroniz" in str(w.message)]
    assert sum(watched) >= 25 and syncs == []


def test_training_data_lives_on_the_gpu() -> None:
    trainer, _ = fit("graph", steps=2)
    x, _ = trainer.datamodule.splits["train"]  # type: ignore[attr-defined]
    assert x.device.type == "cuda"
