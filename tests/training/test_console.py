"""``cnnbench.training.console``: the throttled progress bar and the no-op profiler exist for speed;
each must keep Lightning's behaviour."""

from __future__ import annotations

import lightning as L
import pytest
from lightning.pytorch.callbacks import RichProgressBar
from tiny_fit import Tiny, fit

from cnnbench.training import NoProfiler, ProgressBar, trainer_extras


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


def test_no_profiler_yields_the_action_name_like_lightnings_default() -> None:
    with NoProfiler().profile("step") as name:
        assert name == "step"
    trainer = L.Trainer(accelerator="cpu", **trainer_extras("runs", "net", 0, progress_bar=False))
    assert isinstance(trainer.profiler, NoProfiler)
