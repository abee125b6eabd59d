"""Checkpoints written before the restructuring (issue 19) still load.

``tests/fixtures/lenet5-avg-same-v0.1.0.ckpt`` was written by ``cnnbench fit`` at commit c1e5da0
(release 0.1.0, before the move to the ``training/`` and ``cli/`` packages)::

    cnnbench fit --model lenet5 --model.pool avg --model.padding same --data synthetic \\
      --data.size 32 --data.channels 1 --data.train_images 64 --data.test_images 32 \\
      --data.batch_size 16 --data.augment none --trainer.max_steps 3 --seed_everything 7

``...logits.pt`` holds a fixed input and the logits that release computed for it, and the figures
below (test loss and accuracy, the refusal to extend the finished schedule) are what that release
printed for the same commands. They are the old release's answers, not the code under test's.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import cnnbench
from cnnbench.cli import main

FIXTURES = Path(__file__).parent / "fixtures"
CKPT = FIXTURES / "lenet5-avg-same-v0.1.0.ckpt"
DATA = [
    "--data",
    "synthetic",
    "--data.size",
    "32",
    "--data.channels",
    "1",
    "--data.train_images",
    "64",
    "--data.test_images",
    "32",
    "--data.augment",
    "none",
]
FAST = ["--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false", "--trainer.accelerator=cpu"]


def test_an_old_checkpoint_rebuilds_the_same_model() -> None:
    model = cnnbench.load_from_checkpoint(CKPT).eval()
    assert type(model).__name__ == "LeNet5"
    assert (model.hparams.pool, model.hparams.padding) == ("avg", "same")
    reference = torch.load(FIXTURES / "lenet5-avg-same-v0.1.0.logits.pt", weights_only=True)
    with torch.no_grad():
        logits = model(reference["input"])
    torch.testing.assert_close(logits, reference["logits"], rtol=0, atol=1e-6)


def test_an_old_checkpoint_tests_as_before(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["test", "--model", "lenet5", *DATA, "--ckpt_path", str(CKPT), *FAST]) == 0
    out = capsys.readouterr().out
    assert "0.15625" in out  # test/acc printed by release 0.1.0
    assert "2.29607" in out  # test/loss


def test_an_old_checkpoint_keeps_its_schedule_metadata(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # the onecycle schedule stored in the old file is read: extending it is refused as before
    args = ["fit", "--model", "lenet5", *DATA, "--data.batch_size", "16", "--trainer.max_steps", "4"]
    assert main([*args, "--ckpt_path", str(CKPT), *FAST]) != 0
    err = capsys.readouterr().err
    assert "sized for 3 steps but this run needs 4" in err
