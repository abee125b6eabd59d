"""Issue 12 items 3, 7, 11 on the command line: a quiet console, --trainer.logger, and
run folders (absolute paths, none left empty after a failed start)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from cli.test_cli import run_cli
from fakes import data_args

from cnnbench.cli import main

QUIET = ["--trainer.enable_progress_bar=false", "--trainer.accelerator=cpu", "--trainer.log_every_n_steps=1"]
NOISE = (
    "litlogger",
    "LeafSpec",
    "could not find the monitored key",
    "wandb: WARNING",
    "weights_only",
    "anonymous setting",
    "git root",
    "exists and is not empty",
    "Trainer already configured",
)


def test_fit_and_resume_print_no_third_party_noise_and_a_layers_only_table(mnist_root: Path, workdir: Path) -> None:
    # 2 steps: the fit stops before any validation (the false monitor warning's case)
    args = ["fit", "--model", "lenet5", *data_args(mnist_root), *QUIET, "--logger", "wandb"]
    first = run_cli(*args, "--trainer.max_steps=2")
    assert first.returncode == 0, first.stderr[-3000:]
    resumed = run_cli(*args, "--trainer.max_steps=2", "--ckpt_path", "last")  # resume of a finished run
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    for proc in (first, resumed):
        out = proc.stdout + proc.stderr
        assert not [n for n in NOISE if n in out], out[-3000:]
    table = first.stdout.split("run folder:")[0]
    assert "features" in table and "classifier" in table
    assert "val_acc" not in table and "test_acc" not in table and "FLOPs" not in table
    # item 11: absolute paths, from any directory
    run = (workdir / "runs" / "lenet5" / "version_0").resolve()
    assert f"run folder:       {run}" in first.stdout
    assert "best checkpoint:  (none: no validation)" in first.stdout
    sync = [ln for ln in first.stderr.splitlines() if "wandb sync" in ln]
    assert (
        sync and os.path.isabs(sync[0].split("wandb sync ", 1)[1]) and Path(sync[0].split("wandb sync ", 1)[1]).is_dir()
    )


def test_trainer_logger_wandb_is_routed_offline_and_other_loggers_are_added(
    mnist_root: Path, workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["fit", "--model", "lenet5", *data_args(mnist_root), *QUIET, "--trainer.max_steps=16"]
    # LightningCLI's way, with the class path and an init argument
    args = [*base, "--trainer.logger", "lightning.pytorch.loggers.WandbLogger", "--trainer.logger.project", "p12"]
    assert main(args) == 0
    runs = list((workdir / "runs" / "lenet5" / "version_0" / "wandb").glob("offline-run-*"))
    assert len(runs) == 1, "WandbLogger was ignored"
    records = next(runs[0].glob("*.wandb")).read_bytes()
    assert b"p12" in records and b"val/acc" in records
    assert b"_instantiator" not in records and b"_class_path" not in records  # hyperparameters once, nested
    assert (workdir / "runs" / "lenet5" / "version_0" / "metrics.csv").is_file()  # CSV kept next to it
    # any other Lightning logger by short name: added next to the CSV log
    assert main([*base, "--trainer.logger", "CSVLogger", "--trainer.logger.save_dir", "extra"]) == 0
    assert list((workdir / "extra").rglob("metrics.csv"))
    assert (workdir / "runs" / "lenet5" / "version_1" / "metrics.csv").is_file()


def test_failed_start_leaves_no_run_folder(workdir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["fit", "--model", "lenet5", "--data.root", str(tmp_path / "empty"), "--data.download=false", *QUIET]
    assert main([*args, "--trainer.max_steps=2"]) == 2
    assert "missing file" in capsys.readouterr().err
    assert not (workdir / "runs").exists()
