"""The ``cnnbench`` command end to end on small offline data."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from fakes import data_args

from cnnbench.cli import main

FAST = [
    "--trainer.enable_progress_bar=false",
    "--trainer.log_every_n_steps=1",
    "--trainer.enable_model_summary=false",
    "--trainer.accelerator=cpu",
]


@pytest.fixture
def mnist_data(tmp_path: Path) -> Path:
    from fakes import write_fake_mnist

    root = tmp_path / "data"
    write_fake_mnist(root)
    return root


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cnnbench", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
    )


def read_metrics(path: Path) -> list[dict[str, str]]:
    with path.open() as fh:
        return list(csv.DictReader(fh))


def test_fit_in_a_subprocess_leaves_run_folder_checkpoint_and_config(mnist_data: Path, workdir: Path) -> None:
    proc = run_cli(
        "fit", "--model", "lenet5", *data_args(mnist_data), "--trainer.max_epochs=1", "--test_after_fit=true", *FAST
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = workdir / "runs" / "lenet5" / "version_0"
    assert (run / "checkpoints" / "last.ckpt").is_file() and (run / "config.yaml").is_file()
    assert "best val/acc:" in proc.stdout and "run folder:" in proc.stdout
    names = set(read_metrics(run / "metrics.csv")[0])
    assert {"train/loss", "train/acc", "val/loss", "val/acc", "test/loss", "test/acc"} <= names


def test_registry_name_class_path_and_class_name_all_work(mnist_data: Path, workdir: Path) -> None:
    for model in ("lenet5", "cnnbench.models.lenet.LeNet5", "LeNet5"):
        assert main(["fit", "--model", model, *data_args(mnist_data), "--trainer.max_steps=2", *FAST]) == 0
    assert sorted(p.name for p in (workdir / "runs" / "lenet5").iterdir()) == ["version_0", "version_1", "version_2"]


def test_model_arguments_and_linked_shapes(mnist_data: Path, workdir: Path) -> None:
    args = ["fit", "--model", "alexnet_cifar", "--data", "mnist", *data_args(mnist_data)]
    args += ["--model.pool", "avg", "--model.padding", "valid", "--trainer.max_steps=1", *FAST]
    assert main(args) == 0
    config = (workdir / "runs" / "alexnet_cifar" / "version_0" / "config.yaml").read_text()
    assert "pool: avg" in config and "padding: valid" in config
    ckpt = torch.load(workdir / "runs" / "alexnet_cifar" / "version_0" / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["hyper_parameters"]["in_channels"] == 1 and ckpt["hyper_parameters"]["input_size"] == 32


def test_print_config_shows_recipe_and_links(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--model", "lenet5", "--print_config"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "cnnbench.models.lenet.LeNet5" in out and "cnnbench.data.mnist.MNISTDataModule" in out
    assert "max_epochs: 8" in out and "augment: standard" in out


def test_unknown_names_fail_with_close_matches(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fit", "--model", "lenet"]) == 2
    assert "Did you mean 'lenet5'" in capsys.readouterr().err
    assert main(["fit", "--model", "lenet5", "--data", "mnits"]) == 2
    assert "Did you mean 'mnist'" in capsys.readouterr().err
    assert not (workdir / "runs").exists()


def test_bad_values_fail_before_training(mnist_data: Path, workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fit", "--model", "lenet5", "--model.pool", "median", *data_args(mnist_data), *FAST]) == 2
    assert "max, avg, min" in capsys.readouterr().err
    assert main(["fit", "--model", "lenet5", "--model.lr", "-1", *data_args(mnist_data), *FAST]) == 2
    assert "lr must be > 0" in capsys.readouterr().err
    args = ["fit", "--model", "alexnet", "--data", "mnist", "--data.image_size=32", *data_args(mnist_data), *FAST]
    assert main([*args, "--trainer.max_steps=1"]) == 2
    assert "smaller than its" in capsys.readouterr().err
    assert not list(workdir.rglob("*.ckpt"))


def test_models_and_summary(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))  # the models table cache
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "lenet5_classic" in out and "60,000" in out and "61,100,840" in out
    assert main(["summary", "--model", "alexnet_cifar", "--model.padding", "valid"]) == 0
    out = capsys.readouterr().out
    assert "features.0" in out and "valid" in out and "total" in out
    assert main(["summary", "--model", "alexnet", "--model.input_size", "32"]) == 2
    assert "smaller than its" in capsys.readouterr().err


def test_test_from_checkpoint_without_other_flags_and_load_from_checkpoint(
    mnist_data: Path, workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import cnnbench

    assert (
        main(["fit", "--model", "lenet5", "--model.pool", "lp", *data_args(mnist_data), "--trainer.max_steps=3", *FAST])
        == 0
    )
    ckpt = workdir / "runs" / "lenet5" / "version_0" / "checkpoints" / "last.ckpt"
    capsys.readouterr()
    assert main(["test", "--ckpt_path", str(ckpt), *FAST]) == 0
    assert "test/acc" in capsys.readouterr().out
    model = cnnbench.load_from_checkpoint(ckpt)
    assert model.hparams.pool == "lp"
    stored = torch.load(ckpt, weights_only=True)
    torch.testing.assert_close(model.state_dict()["features.0.weight"], stored["state_dict"]["features.0.weight"])


def test_predict_on_files_with_per_file_errors(
    mnist_data: Path, workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import numpy as np
    from PIL import Image

    assert main(["fit", "--model", "lenet5", *data_args(mnist_data), "--trainer.max_steps=3", *FAST]) == 0
    ckpt = str(workdir / "runs" / "lenet5" / "version_0" / "checkpoints" / "last.ckpt")
    images = workdir / "images"
    images.mkdir()
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(images / "a.png")
    Image.fromarray(np.zeros((40, 40), np.uint8)).save(images / "b.jpg")
    Image.fromarray(np.zeros((28, 28, 3), np.uint8)).save(workdir / "colour.png")
    (workdir / "notes.png").write_text("not an image")
    capsys.readouterr()
    code = main(
        [
            "predict",
            "--ckpt_path",
            ckpt,
            "--format=csv",
            str(images),
            str(workdir / "colour.png"),
            str(workdir / "missing.png"),
            str(workdir / "notes.png"),
        ]
    )
    out, err = capsys.readouterr()
    assert code == 1
    assert len(out.strip().splitlines()) == 3 and all(len(line.split(",")) == 3 for line in out.strip().splitlines())
    assert "missing.png: error: no such file" in err
    assert "notes.png: error: not a readable image" in err
    assert "colour.png: error: colour image (3 channels) but the model expects greyscale" in err
    assert main(["predict", "--ckpt_path", ckpt, "--convert", str(workdir / "colour.png")]) == 0


def test_wandb_offline_run_folder_with_metrics(mnist_data: Path, workdir: Path) -> None:
    args = ["fit", "--model", "lenet5", *data_args(mnist_data), "--trainer.max_epochs=1", "--logger", "wandb"]
    args += ["--wandb.project", "cnnbench-test", "--wandb.tags", "[a, b]", *FAST]
    assert main(args) == 0
    runs = list((workdir / "runs" / "lenet5" / "version_0" / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    assert list(runs[0].glob("*.wandb")) and (workdir / "runs" / "lenet5" / "version_0" / "metrics.csv").is_file()
    records = next(runs[0].glob("*.wandb")).read_bytes()  # protobuf records hold the metric keys
    assert b"val/acc" in records and b"train/loss" in records and b"cnnbench-test" in records


def test_ddp_with_two_cpu_processes(mnist_data: Path, workdir: Path) -> None:
    proc = run_cli(
        "fit",
        "--model",
        "lenet5",
        *data_args(mnist_data),
        "--trainer.max_epochs=1",
        "--trainer.devices=2",
        "--trainer.strategy=ddp",
        "--trainer.accelerator=cpu",
        "--trainer.enable_progress_bar=false",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(p.name for p in (workdir / "runs" / "lenet5").iterdir()) == ["version_0"]
    ckpts = sorted(p.name for p in (workdir / "runs" / "lenet5" / "version_0" / "checkpoints").iterdir())
    assert len([c for c in ckpts if c.startswith("best")]) == 1 and "last.ckpt" in ckpts
    # each of the 2 ranks took 250 of the 500 training images: 7 steps of 32
    assert (
        torch.load(workdir / "runs" / "lenet5" / "version_0" / "checkpoints" / "last.ckpt", weights_only=True)[
            "global_step"
        ]
        == 7
    )


def test_per_model_optimizer_defaults_reach_the_cli(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["fit", "--model", "lenet5_classic", "--print_config"])
    out = capsys.readouterr().out
    assert "optimizer: adam" in out and "lr: 0.003" in out
