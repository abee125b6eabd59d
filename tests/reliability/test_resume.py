"""Faults 1-4: interrupted fits resume exactly; checkpoints are never half-written or unreadable."""

from __future__ import annotations

import csv
import signal
import time
from pathlib import Path

import lightning as L
import pytest
import torch
from fakes import data_args
from helpers import QUIET, FailAtStep, TinyDropoutNet, no_network_attempts, start

from cnnbench.checkpoint import CheckpointError, load_from_checkpoint, read_checkpoint
from cnnbench.cli import main
from cnnbench.data import MNISTDataModule
from cnnbench.training import trainer_extras


def fit(
    root: Path, out: Path, version: int, callbacks: list[L.Callback] | None = None, ckpt_path: str | None = None
) -> TinyDropoutNet:
    L.seed_everything(0, verbose=False)
    dm = MNISTDataModule(
        root=str(root), val_size=100, batch_size=64, download=False, verify=False
    )  # seeded augmentation
    model = TinyDropoutNet(lr=0.05)
    extras = trainer_extras(str(out), "net", version, progress_bar=False)
    extras["callbacks"] += callbacks or []
    trainer = L.Trainer(max_epochs=2, accelerator="cpu", log_every_n_steps=1, enable_model_summary=False, **extras)
    trainer.fit(model, dm, ckpt_path=ckpt_path)
    return model


def logged(path: Path) -> list[tuple[str, str, str]]:
    """(epoch, step, metric) of every logged loss and accuracy, in file order."""
    with path.open() as fh:
        rows = list(csv.DictReader(fh))
    keys = ("train/loss", "train/acc", "val/loss", "val/acc")
    return [(r["epoch"], r["step"], k) for r in rows for k in keys if r.get(k)]


def test_resume_parity_after_an_exception_mid_epoch(data_root: Path, tmp_path: Path) -> None:
    reference = fit(data_root, tmp_path, version=0)
    with pytest.raises(RuntimeError, match="injected failure at step 20"):
        fit(data_root, tmp_path, version=1, callbacks=[FailAtStep(20)])  # 1000/64 = 15 steps per epoch: mid epoch 2
    last = tmp_path / "net" / "version_1" / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=True)["global_step"] == 20
    resumed = fit(data_root, tmp_path, version=1, ckpt_path=str(last))
    for (name, a), b in zip(reference.state_dict().items(), resumed.state_dict().values()):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0, msg=name)
    assert logged(tmp_path / "net" / "version_1" / "metrics.csv") == logged(
        tmp_path / "net" / "version_0" / "metrics.csv"
    )


def test_sigterm_mid_epoch_checkpoints_and_resumes_from_that_step(
    data_root: Path, workdir: Path, tmp_path: Path
) -> None:
    progress = tmp_path / "progress"
    args = [
        "fit",
        "--model",
        "lenet5",
        "--model.scheduler=cosine",
        *data_args(data_root),
        "--trainer.max_epochs=1",
        *QUIET,
    ]
    proc = start(tmp_path, *args, "--trainer.callbacks+=helpers.SlowSteps", CNNBENCH_PROGRESS_FILE=str(progress))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (
        progress.exists() and progress.read_text() and int(progress.read_text()) >= 5
    ):
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    sent = time.monotonic()
    output = proc.communicate(timeout=60)[0]
    assert time.monotonic() - sent < 15, "did not stop promptly"
    assert proc.returncode == 143, output[-2000:]
    last = workdir / "runs" / "lenet5" / "version_0" / "checkpoints" / "last.ckpt"
    stopped_at = torch.load(last, weights_only=True)["global_step"]
    assert 5 <= stopped_at < 31  # 1000 images / 32 = 31 steps: stopped mid-epoch
    assert (
        main(
            [
                "fit",
                "--model",
                "lenet5",
                "--model.scheduler=cosine",
                *data_args(data_root),
                "--trainer.max_epochs=1",
                *QUIET,
                "--ckpt_path",
                "last",
            ]
        )
        == 0
    )
    assert torch.load(last, weights_only=True)["global_step"] == 31
    with (workdir / "runs" / "lenet5" / "version_0" / "metrics.csv").open() as fh:
        steps = [int(r["step"]) for r in csv.DictReader(fh) if r["train/loss"]]
    assert steps == list(range(31))  # each step once: the rerun continued at the stop, not at 0
    assert no_network_attempts(tmp_path)


def test_crash_while_writing_a_checkpoint_keeps_the_previous_one(
    data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    L.seed_everything(0, verbose=False)
    dm = MNISTDataModule(root=str(data_root), val_size=100, batch_size=64, download=False, verify=False)
    model = TinyDropoutNet()
    extras = trainer_extras(str(tmp_path), "net", 0, progress_bar=False)
    trainer = L.Trainer(max_epochs=1, accelerator="cpu", enable_model_summary=False, **extras)
    trainer.fit(model, dm)
    folder = tmp_path / "net" / "version_0" / "checkpoints"
    last = folder / "last.ckpt"
    before = last.read_bytes()

    real_save = torch.save

    def crash_halfway(obj: object, f: object, *args: object, **kwargs: object) -> None:
        real_save(obj, f, *args, **kwargs)
        f.truncate(f.tell() // 2)  # type: ignore[attr-defined]
        raise OSError("disk full (injected)")

    monkeypatch.setattr(torch, "save", crash_halfway)
    with pytest.raises(OSError, match="injected"):
        trainer.save_checkpoint(last)
    monkeypatch.setattr(torch, "save", real_save)
    assert last.read_bytes() == before  # untouched
    assert sorted(p.name for p in folder.iterdir() if p.name.startswith(".")) == []  # no partial temp file left
    assert read_checkpoint(last)["global_step"] == 15


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_truncated_or_corrupt_checkpoint_is_a_clear_error(
    damage: str, data_root: Path, workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["fit", "--model", "lenet5", *data_args(data_root), "--trainer.max_steps=2", *QUIET]) == 0
    good = workdir / "runs" / "lenet5" / "version_0" / "checkpoints" / "last.ckpt"
    bad = workdir / "bad.ckpt"
    content = good.read_bytes()
    bad.write_bytes(
        {"truncate": content[: len(content) // 3], "garbage": b"\x80\x04garbage" * 10, "empty": b""}[damage]
    )
    capsys.readouterr()
    for command in (
        ["test", "--ckpt_path", str(bad)],
        ["fit", "--model", "lenet5", *data_args(workdir), "--ckpt_path", str(bad)],
    ):
        assert main([*command, *QUIET]) == 2
        err = capsys.readouterr().err
        assert "bad.ckpt is not a readable checkpoint" in err and "Traceback" not in err
    with pytest.raises(CheckpointError, match="bad.ckpt"):
        load_from_checkpoint(bad)
