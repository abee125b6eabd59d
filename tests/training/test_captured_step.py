"""The captured training step (``cnnbench.training.captured_step``) on the CPU.

There is no CUDA graph on a CPU, so these tests check everything around the capture (the
fused update itself is checked in ``test_fused_update.py``): when it applies, and a whole fit through the engine (capture switched off, or replaced
by a stand-in graph that replays from the static buffers) against Lightning's own eager
step on the same batches. ``tests/gpu/`` runs the real capture where CUDA exists.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import lightning as L
import pytest
import torch

import cnnbench.training.captured_step as ts
from cnnbench.data import MNISTDataModule
from cnnbench.models import DivergedError, create_model
from cnnbench.training import trainer_extras


# ----------------------------------------------------------------------------- when it applies
def _fake_trainer(**overrides: Any) -> Any:
    base = {
        "strategy": SimpleNamespace(root_device=torch.device("cuda", 0)),
        "world_size": 1,
        "accumulate_grad_batches": 1,
        "precision": "32-true",
        "gradient_clip_algorithm": None,
        "optimizers": [torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1, momentum=0.9)],
    }
    return SimpleNamespace(**{**base, **overrides})


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({}, None),
        ({"strategy": SimpleNamespace(root_device=torch.device("cpu"))}, "CUDA graphs need a CUDA device"),
        ({"world_size": 2}, "DDP"),
        ({"accumulate_grad_batches": 4}, "gradient accumulation"),
        ({"precision": "16-mixed"}, "fp16 needs a dynamic loss scale"),
        ({"precision": "bf16-mixed"}, None),
        ({"optimizers": [torch.optim.RMSprop([torch.nn.Parameter(torch.zeros(1))])]}, "optimizer RMSprop"),
        ({"optimizers": [torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], amsgrad=True)]}, "amsgrad"),
    ],
)
def test_graph_blocker_names_the_reason(overrides: dict[str, Any], reason: str | None) -> None:
    found = ts.graph_blocker(_fake_trainer(**overrides), create_model("lenet5"))
    assert found is None if reason is None else reason in (found or "")


def test_a_model_with_its_own_training_step_is_not_captured() -> None:
    class Custom(type(create_model("lenet5"))):  # type: ignore[misc]
        def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
            return super().training_step(batch, batch_idx)

    assert "its own training_step" in (ts.graph_blocker(_fake_trainer(), Custom()) or "")


def test_unknown_mode_fails_at_construction_listing_the_choices() -> None:
    with pytest.raises(ValueError, match="auto, graph, eager"):
        ts.CapturedStep("cuda-graph")


# ----------------------------------------------------------------------------- whole fits
class StandInGraph:
    """A CUDA graph stand-in for the CPU: the captured body is re-run on the static buffers
    at each replay (the real capture records instead of running, so its first replay after
    capture is the one this stand-in already ran)."""

    engine: Any = None

    def __init__(self) -> None:
        self.replays = 0

    def replay(self) -> None:
        self.replays += 1
        if self.replays > 1:
            self.engine.step_body(*self.engine._static)


def _fit(root: Path, tmp: Path, mode: str, steps: int = 12, **trainer_kwargs: Any) -> tuple[L.Trainer, Any]:
    L.seed_everything(0, verbose=False)
    dm = MNISTDataModule(root=str(root), download=False, verify=False, val_size=100, batch_size=32)
    make = trainer_kwargs.pop("make_model", lambda **kw: create_model("lenet5", **kw))
    model = make(**trainer_kwargs.pop("model", {}))
    extras = trainer_extras(str(tmp), "lenet5", mode, progress_bar=False, train_step=mode)
    extras["callbacks"] += trainer_kwargs.pop("callbacks", [])
    trainer = L.Trainer(
        max_steps=steps,
        accelerator="cpu",
        enable_model_summary=False,
        log_every_n_steps=4,
        enable_progress_bar=False,
        num_sanity_val_steps=0,
        **{**extras, **trainer_kwargs},
    )
    trainer.fit(model, dm)
    return trainer, model


def _logged(trainer: L.Trainer, key: str) -> list[float]:
    import csv

    with open(Path(trainer.log_dir) / "metrics.csv") as fh:  # type: ignore[arg-type]
        return [float(r[key]) for r in csv.DictReader(fh) if r.get(key)]


@pytest.fixture
def engine_on_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """The engine runs its step function eagerly: no CUDA graph on a CPU."""
    monkeypatch.setattr(ts, "capture_enabled", lambda: False)


@pytest.mark.parametrize(
    "settings",
    [
        {},
        {"gradient_clip_val": 0.05},
        {"gradient_clip_val": 0.01, "gradient_clip_algorithm": "value"},
        {"model": {"optimizer": "adam", "lr": 3e-3}},
        {"model": {"optimizer": "adamw", "lr": 3e-3, "scheduler": "cosine"}},
    ],
    ids=["sgd-onecycle", "clip-norm", "clip-value", "adam-onecycle", "adamw-cosine"],
)
def test_engine_fit_equals_lightning_eager_fit(
    mnist_root: Path, tmp_path: Path, engine_on_cpu: None, settings: dict[str, Any]
) -> None:
    eager, eager_model = _fit(mnist_root, tmp_path, "eager", **dict(settings))
    engine, engine_model = _fit(mnist_root, tmp_path, "graph", **dict(settings))
    cb = next(c for c in engine.callbacks if isinstance(c, ts.CapturedStep))  # type: ignore[attr-defined]
    assert cb.reason is None and eager.global_step == engine.global_step == 12
    for (name, a), b in zip(eager_model.state_dict().items(), engine_model.state_dict().values()):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5, msg=name)
    torch.testing.assert_close(_logged(engine, "train/loss"), _logged(eager, "train/loss"), rtol=1e-4, atol=1e-5)
    assert len(_logged(engine, "train/loss")) == 3  # read every log_every_n_steps, not every step
    assert engine_model.step_engine is None  # detached when the fit ends


def test_static_buffers_are_refilled_before_each_replay(
    mnist_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    graphs: list[StandInGraph] = []

    def make_graph() -> StandInGraph:
        graphs.append(StandInGraph())
        return graphs[-1]

    real_capture = ts.StepEngine._capture

    def capture(self: ts.StepEngine, x: torch.Tensor, y: torch.Tensor) -> None:
        StandInGraph.engine = self
        real_capture(self, x, y)

    monkeypatch.setattr(ts, "make_graph", make_graph)
    monkeypatch.setattr(ts, "graph_context", lambda graph: contextlib.nullcontext())
    monkeypatch.setattr(ts.StepEngine, "_capture", capture)
    monkeypatch.setattr(ts, "graph_blocker", lambda trainer, module, require_cuda=True: None)
    eager, eager_model = _fit(mnist_root, tmp_path, "eager")
    graph, graph_model = _fit(mnist_root, tmp_path, "graph")
    assert len(graphs) == 1 and graphs[0].replays == 12 - 3  # 3 warm-up steps, then replays
    for a, b in zip(eager_model.parameters(), graph_model.parameters()):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(_logged(graph, "train/acc"), _logged(eager, "train/acc"))


def test_a_failed_capture_falls_back_to_eager_with_one_line(
    mnist_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def refuse(graph: Any) -> Any:
        raise RuntimeError("operation not permitted when stream is capturing\nmore detail")

    monkeypatch.setattr(ts, "make_graph", StandInGraph)
    monkeypatch.setattr(ts, "graph_context", refuse)
    monkeypatch.setattr(ts, "graph_blocker", lambda trainer, module, require_cuda=True: None)
    _, eager_model = _fit(mnist_root, tmp_path, "eager")
    with caplog.at_level("INFO"):
        _, model = _fit(mnist_root, tmp_path, "graph")
    lines = [r.getMessage() for r in caplog.records if "training step" in r.getMessage()]
    assert lines == [
        "training step: eager from step 4 on (capture failed (RuntimeError: operation not permitted when stream is capturing))"
    ]
    for a, b in zip(eager_model.parameters(), model.parameters()):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5)


def test_graph_mode_on_the_cpu_says_why_it_runs_eager(
    mnist_root: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("INFO"):
        _fit(mnist_root, tmp_path, "graph", steps=2)
    assert "training step: eager (CUDA graphs need a CUDA device)" in caplog.text
    with caplog.at_level("INFO"):
        caplog.clear()
        _fit(mnist_root, tmp_path, "auto", steps=2)
    assert "training step" not in caplog.text  # auto on a CPU: eager is expected, nothing to say


def test_engine_resume_mid_epoch_equals_an_uninterrupted_fit(
    mnist_root: Path, tmp_path: Path, engine_on_cpu: None
) -> None:
    """Stopped mid-epoch and mid-logging-window: the same weights, optimizer moments and
    logged train/loss and train/acc as one uninterrupted fit (the engine's device sums are
    folded into the checkpoint's running sums)."""
    adam = {"optimizer": "adam", "lr": 3e-3}
    whole_trainer, whole = _fit(mnist_root, tmp_path / "a", "graph", steps=20, model=dict(adam))

    class StopAt(L.Callback):
        def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
            if trainer.global_step == 6:
                raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError, match="interrupted"):
        _fit(mnist_root, tmp_path / "b", "graph", steps=20, model=dict(adam), callbacks=[StopAt()])
    ckpt = tmp_path / "b" / "lenet5" / "graph" / "checkpoints" / "last.ckpt"
    L.seed_everything(0, verbose=False)
    dm = MNISTDataModule(root=str(mnist_root), download=False, verify=False, val_size=100, batch_size=32)
    resumed = create_model("lenet5", **adam)
    extras = trainer_extras(str(tmp_path / "b"), "lenet5", "graph", progress_bar=False, train_step="graph")
    trainer = L.Trainer(
        max_steps=20,
        accelerator="cpu",
        enable_model_summary=False,
        log_every_n_steps=4,
        enable_progress_bar=False,
        num_sanity_val_steps=0,
        **extras,
    )
    trainer.fit(resumed, dm, ckpt_path=str(ckpt))
    for a, b in zip(whole.parameters(), resumed.parameters()):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6)
    for key in ("train/loss", "train/acc"):
        assert _logged(trainer, key) == pytest.approx(_logged(whole_trainer, key), rel=1e-5), key
    assert len(_logged(trainer, "train/acc")) == 2  # the epoch end (15 batches), then the fit end (20)


def test_a_nan_loss_in_the_engine_raises_diverged_at_the_next_check(
    mnist_root: Path, tmp_path: Path, engine_on_cpu: None
) -> None:
    with pytest.raises(DivergedError, match="NaN or infinite at or before step 25"):
        _fit(mnist_root, tmp_path, "graph", steps=60, model={"lr": 1e6, "scheduler": "none", "weight_decay": 0.0})


def test_a_parameter_the_loss_does_not_reach_is_left_alone_as_torch_optim_does(
    mnist_root: Path, tmp_path: Path, engine_on_cpu: None
) -> None:
    def with_unused(**kwargs: Any) -> Any:
        model = create_model("lenet5", **kwargs)
        model.unused = torch.nn.Parameter(torch.ones(3, 3))  # 2-D: in the weight-decay group
        return model

    _, eager = _fit(mnist_root, tmp_path, "eager", make_model=with_unused)
    _, engine = _fit(mnist_root, tmp_path, "graph", make_model=with_unused)
    assert torch.equal(engine.unused.detach(), torch.ones(3, 3))  # stepped with a zero gradient, decay would shrink it
    for a, b in zip(eager.parameters(), engine.parameters()):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5)
