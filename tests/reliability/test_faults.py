"""Faults 7-12: W&B unreachable, damaged data, bad configs, divergence, bad prediction inputs, determinism."""

from __future__ import annotations

import csv
import json
import socket
import struct
import time
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch
import yaml
from fakes import data_args
from helpers import QUIET, TinyDropoutNet

from cnnbench.cli import main
from cnnbench.data import DataError, MNISTDataModule
from cnnbench.models import DivergedError
from cnnbench.training import trainer_extras


def closed_loopback_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # nothing listens once the socket is closed


def test_wandb_unreachable_in_online_mode_falls_back_offline(
    data_root: Path, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("WANDB_MODE")
    monkeypatch.setenv("WANDB_BASE_URL", f"http://127.0.0.1:{closed_loopback_port()}")
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    started = time.monotonic()
    args = ["fit", "--model", "lenet5", *data_args(data_root), "--trainer.max_epochs=1", *QUIET]
    assert main([*args, "--logger", "wandb", "--wandb.mode", "online", "--wandb.init_timeout", "5"]) == 0
    assert time.monotonic() - started < 120
    run = workdir / "runs" / "lenet5" / "version_0"
    assert "val/acc" in (run / "metrics.csv").read_text()  # kept locally
    offline = list((run / "wandb").glob("offline-run-*"))
    assert len(offline) == 1 and b"val/acc" in next(offline[0].glob("*.wandb")).read_bytes()  # and for `wandb sync`


@pytest.mark.parametrize("damage", ["missing", "truncated", "corrupted"])
def test_damaged_data_files_fail_fast_naming_the_file(
    damage: str, data_root: Path, workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = data_root / "MNIST" / "raw" / "train-labels-idx1-ubyte"
    if damage == "missing":
        path.unlink()
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[:-7])
    else:
        path.write_bytes(b"\x00\x00\x08\x01" + b"\xff" * 20)
    started = time.monotonic()
    code = main(["fit", "--model", "lenet5", *data_args(data_root), *QUIET])
    assert code == 2 and time.monotonic() - started < 30
    err = capsys.readouterr().err
    assert "train-labels-idx1-ubyte" in err and "Traceback" not in err
    assert ("missing" in err) if damage == "missing" else ("corrupted" in err)
    assert not list(workdir.rglob("*.ckpt"))


def test_real_md5_check_catches_a_changed_byte(tmp_path: Path) -> None:
    from fakes import write_fake_mnist

    write_fake_mnist(tmp_path)  # fake files never match the real MNIST checksums
    with pytest.raises(DataError, match="corrupted"):
        MNISTDataModule(root=str(tmp_path), download=False).prepare_data()


def _config(tmp_path: Path, content: dict) -> str:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(content))
    return str(path)


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--model", "lenet7"], "Did you mean 'lenet5'"),
        (["--model", "lenet5", "--data", "cifar1O"], "Did you mean 'cifar10'"),
        (["--model", "lenet5", "--model.pool", "maxx"], "valid: max, avg, min"),
        (["--model", "lenet5", "--model.padding", "half"], "valid, same, full"),
        (["--model", "lenet5", "--data.augment", "heavy"], "valid: none, standard, strong"),
        (["--model", "alexnet", "--data", "mnist", "--data.image_size", "32"], "smaller than its"),
        (["--model", "lenet5", "--data.batch_size", "0"], "batch_size must be a positive integer"),
        (["--model", "lenet5", "--data.batch_size", "-4"], "batch_size must be a positive integer"),
        (["--model", "lenet5", "--model.lr", "0"], "lr must be > 0"),
        (["--model", "lenet5", "--model.lr", "-0.1"], "lr must be > 0"),
        (["--model", "lenet5", "--trainer.max_epochs", "0"], "max_epochs must be a positive integer"),
        (["--model", "lenet5", "--trainer.max_epochs", "-3"], "max_epochs must be a positive integer"),
    ],
)
def test_bad_cli_values_fail_before_training(
    extra: list[str], needle: str, data_root: Path, workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["fit", *extra, "--data.root", str(data_root), "--data.download=false", "--data.verify=false", *QUIET]
    try:
        code = main(args)
    except SystemExit as stop:  # jsonargparse's own validation
        code = int(stop.code or 0)
    assert code == 2
    assert needle in capsys.readouterr().err
    assert not list(workdir.rglob("*.ckpt")) and not list(workdir.rglob("metrics.csv"))


def test_typo_in_a_cli_config_file(
    data_root: Path, workdir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(tmp_path, {"trainer": {"max_epoch": 2}})
    try:
        code = main(["fit", "--model", "lenet5", "--config", config, *data_args(data_root), *QUIET])
    except SystemExit as stop:  # jsonargparse's own exit
        code = int(stop.code or 0)
    assert code == 2
    assert "max_epoch" in capsys.readouterr().err
    assert not list(workdir.rglob("*.ckpt"))


def test_typo_in_a_grid_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "grid.yaml"
    path.write_text("name: g\ndata: {name: mnist}\nmodels: [lenet5]\npool: [max]\npadding: [same]\nseed: [0]\n")
    assert main(["bench", str(path)]) == 2
    assert "grid.yaml: seed: unknown key" in capsys.readouterr().err
    path.write_text(
        "name: g\ndata: {name: mnist}\nmodels: [{name: lenet5, args: {in_channels: 3}}]\npool: [max]\npadding: [same]\n"
    )
    assert main(["bench", str(path)]) == 2
    assert "args.in_channels: set by the data module" in capsys.readouterr().err


def test_wrong_channel_count_between_data_and_model_fails_before_training(data_root: Path, tmp_path: Path) -> None:
    dm = MNISTDataModule(root=str(data_root), val_size=100, download=False, verify=False)
    model = TinyDropoutNet(in_channels=3)
    trainer = L.Trainer(max_epochs=1, accelerator="cpu", **trainer_extras(str(tmp_path), "net", 0, progress_bar=False))
    with pytest.raises(ValueError, match="built for 3-channel 32×32 images but the data gives 1-channel"):
        trainer.fit(model, dm)
    assert trainer.global_step == 0


class Exploding(TinyDropoutNet):
    """Trains normally for one epoch, then its loss (and so its weights) turn NaN."""

    def training_step(self, batch: object, batch_idx: int) -> torch.Tensor:
        loss = super().training_step(batch, batch_idx)  # type: ignore[arg-type]
        if self.current_epoch == 1 and batch_idx == 3:
            return loss * float("nan")  # NaN gradients: the optimizer step makes the weights NaN too
        return loss


def test_divergence_stops_the_run_and_keeps_the_last_finite_checkpoint(data_root: Path, tmp_path: Path) -> None:
    dm = MNISTDataModule(root=str(data_root), val_size=100, batch_size=64, download=False, verify=False)
    trainer = L.Trainer(
        max_epochs=3,
        accelerator="cpu",
        enable_model_summary=False,
        **trainer_extras(str(tmp_path), "net", 0, progress_bar=False),
    )
    with pytest.raises(DivergedError, match="training loss became nan at step"):
        trainer.fit(Exploding(), dm)
    last = torch.load(tmp_path / "net" / "version_0" / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["global_step"] == 15  # the end of the good epoch, not the NaN state
    assert all(torch.isfinite(v).all() for v in last["state_dict"].values())


def test_divergence_exit_code_from_the_cli(data_root: Path, workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = [
        "fit",
        "--model",
        "lenet5",
        "--model.lr",
        "1e8",
        "--model.scheduler",
        "none",
        *data_args(data_root),
        "--trainer.max_epochs=1",
        *QUIET,
    ]
    assert main(args) == 3
    assert "diverged: training loss became" in capsys.readouterr().err


def test_huge_image_is_refused_per_file(
    data_root: Path, workdir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import numpy as np
    from PIL import Image

    import cnnbench.cli.predict

    assert main(["fit", "--model", "lenet5", *data_args(data_root), "--trainer.max_steps=2", *QUIET]) == 0
    Image.fromarray(np.zeros((300, 300), np.uint8)).save(workdir / "huge.png")
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(workdir / "ok.png")
    monkeypatch.setattr(cnnbench.cli.predict, "MAX_PIXELS", 250 * 250)
    ckpt = str(workdir / "runs" / "lenet5" / "version_0" / "checkpoints" / "last.ckpt")
    capsys.readouterr()
    args = ["predict", "--ckpt_path", ckpt, "--format", "csv", str(workdir / "huge.png"), str(workdir / "ok.png")]
    assert main(args) == 1
    out, err = capsys.readouterr()
    assert "huge.png: error: image is too large (300×300" in err
    assert [line.split(",")[0] for line in out.strip().splitlines()[1:]] == [str(workdir / "ok.png")]  # still predicted


def wandb_run_config(folder: Path) -> dict[str, Any]:
    """The run config stored in an offline W&B run's ``.wandb`` file (LevelDB-style log of
    protobuf records), decoded here without the W&B service."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = next(folder.glob("*.wandb")).read_bytes()
    assert data[:4] == b":W&B"
    pos, block, chunk, config = 7, 32768, b"", {}
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a header is padding
            pos += block - pos % block
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        payload, pos = data[pos + 7 : pos + 7 + length], pos + 7 + length
        if kind not in (1, 2, 3, 4):  # 1 full, 2 first, 3 middle, 4 last part of a record
            continue
        chunk = payload if kind in (1, 2) else chunk + payload
        if kind in (1, 4):
            record = pb.Record()
            record.ParseFromString(chunk)
            items = record.run.config.update if record.HasField("run") else record.config.update
            config.update({item.key: json.loads(item.value_json) for item in items})
    return config


def metric_rows(path: Path) -> list[dict[str, str]]:
    """Every row of a metrics.csv, timings left out."""
    with path.open() as fh:
        return [{k: v for k, v in row.items() if k != "train/img_s"} for row in csv.DictReader(fh)]


def test_determinism_same_seed_same_weights_other_seed_differs(data_root: Path, workdir: Path) -> None:
    def run(seed: int) -> tuple[dict[str, torch.Tensor], list[dict[str, str]]]:
        args = [
            "fit",
            "--model",
            "lenet5",
            *data_args(data_root),
            "--trainer.max_epochs=1",
            "--trainer.deterministic=true",
            f"--seed_everything={seed}",
            *QUIET,
        ]
        assert main([*args, "--logger", "wandb"]) == 0
        folder = sorted((workdir / "runs" / "lenet5").iterdir(), key=lambda p: int(p.name.split("_")[1]))[-1]
        ckpt = torch.load(folder / "checkpoints" / "last.ckpt", weights_only=True)
        assert ckpt["cnnbench"]["seed"] == str(seed)
        assert yaml.safe_load((folder / "config.yaml").read_text())["seed_everything"] == seed
        assert wandb_run_config(next((folder / "wandb").glob("offline-run-*")))["seed_everything"] == seed
        return ckpt["state_dict"], metric_rows(folder / "metrics.csv")

    (a, log_a), (b, log_b), (c, log_c) = run(1), run(1), run(2)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert len(log_a) > 10 and log_a == log_b  # every logged value, not only the last row
    assert not all(torch.equal(a[k], c[k]) for k in a)
    assert log_a != log_c
