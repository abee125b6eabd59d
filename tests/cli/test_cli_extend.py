"""Issue 12 item 2: continuing a finished run with a larger max_steps either works
(``--model.scheduler none``) or stops before training with one line saying what to do
(one-cycle / cosine schedules are sized by the run's total steps)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from cli.test_cli import FAST, read_metrics
from fakes import data_args

from cnnbench.cli import main


def last_ckpt(workdir: Path) -> dict:
    return torch.load(workdir / "runs" / "lenet5" / "version_0" / "checkpoints" / "last.ckpt", weights_only=True)


@pytest.mark.parametrize("scheduler", ["onecycle", "cosine"])
def test_extending_a_sized_schedule_fails_before_training_with_the_fix(
    scheduler: str, mnist_root: Path, workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["fit", "--model", "lenet5", f"--model.scheduler={scheduler}", *data_args(mnist_root), *FAST]
    assert main([*base, "--trainer.max_steps=3"]) == 0
    before = last_ckpt(workdir)
    capsys.readouterr()
    # the user's command from the issue: no --model.scheduler, the checkpoint's is used
    code = main(
        ["fit", "--model", "lenet5", *data_args(mnist_root), *FAST, "--ckpt_path", "last", "--trainer.max_steps=6"]
    )
    err = capsys.readouterr().err
    assert code == 2, err
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) <= 3 and "Tried to step" not in err and "Traceback" not in err, err
    assert "sized for 3 steps" in err and "6" in err and "--model.scheduler none" in err
    after = last_ckpt(workdir)
    assert after["global_step"] == 3  # nothing trained, checkpoint untouched
    torch.testing.assert_close(after["state_dict"], before["state_dict"])
    assert sorted(p.name for p in (workdir / "runs" / "lenet5").iterdir()) == ["version_0"]


def test_scheduler_none_run_extends_in_its_own_folder(mnist_root: Path, workdir: Path) -> None:
    base = ["fit", "--model", "lenet5", "--model.scheduler=none", *data_args(mnist_root), *FAST]
    assert main([*base, "--trainer.max_steps=3"]) == 0
    assert (
        main(
            ["fit", "--model", "lenet5", *data_args(mnist_root), *FAST, "--ckpt_path", "last", "--trainer.max_steps=6"]
        )
        == 0
    )
    extended = last_ckpt(workdir)
    assert extended["global_step"] == 6 and extended["hyper_parameters"]["scheduler"] == "none"
    steps = [
        int(r["step"])
        for r in read_metrics(workdir / "runs" / "lenet5" / "version_0" / "metrics.csv")
        if r["train/loss"]
    ]
    assert steps == sorted(set(steps)) and max(steps) == 5  # steps 0..5 logged once each
    assert not (workdir / "runs" / "lenet5" / "version_1").exists()
