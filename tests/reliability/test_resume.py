"""Faults 1-4: interrupted fits resume exactly; checkpoints are never half-written or unreadable."""

from __future__ import annotations

import csv
import io
import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import lightning as L
import pytest
import torch
from fakes import data_args
from helpers import QUIET, FailAtStep, TinyDropoutNet, child_env, no_network_attempts, start

from cnnbench.checkpoint import AtomicCheckpointIO, CheckpointError, load_from_checkpoint, read_checkpoint
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


def logged(path: Path) -> list[tuple[str, str, str, float]]:
    """(epoch, step, metric, value) of every logged value but timings, in file order."""
    with path.open() as fh:
        rows = list(csv.DictReader(fh))
    skip = ("epoch", "step", "train/img_s")
    return [(r["epoch"], r["step"], k, float(v)) for r in rows for k, v in r.items() if k not in skip and v]


def assert_same_log(path: Path, reference: Path) -> None:
    """The same metrics at the same steps with the same values (1e-6) as the reference run."""
    got, want = logged(path), logged(reference)
    assert [g[:3] for g in got] == [w[:3] for w in want]
    for g, w in zip(got, want):
        assert g[3] == pytest.approx(w[3], abs=1e-6), f"{g[2]} at step {g[1]}: {g[3]} != {w[3]} (uninterrupted)"


def assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for name, value in a.items():
        torch.testing.assert_close(b[name], value, atol=1e-6, rtol=0, msg=name)


def test_resume_parity_after_an_exception_mid_epoch(data_root: Path, tmp_path: Path) -> None:
    reference = fit(data_root, tmp_path, version=0)
    with pytest.raises(RuntimeError, match="injected failure at step 20"):
        fit(data_root, tmp_path, version=1, callbacks=[FailAtStep(20)])  # 1000/64 = 15 steps per epoch: mid epoch 2
    last = tmp_path / "net" / "version_1" / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=True)["global_step"] == 20
    resumed = fit(data_root, tmp_path, version=1, ckpt_path=str(last))
    assert_same_weights(reference.state_dict(), resumed.state_dict())
    # values, not only steps: a resume that restarted at step 0 with the loaded weights, or
    # lost the epoch's running sums, logs other losses and accuracies
    assert_same_log(tmp_path / "net" / "version_1" / "metrics.csv", tmp_path / "net" / "version_0" / "metrics.csv")


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
    run = workdir / "runs" / "lenet5" / "version_0"
    stopped_at = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"]
    assert 5 <= stopped_at < 31  # 1000 images / 32 = 31 steps: stopped mid-epoch
    assert main([*args, "--ckpt_path", "last"]) == 0
    assert not (workdir / "runs" / "lenet5" / "version_1").exists()  # continued in the same run folder
    # compared with the same command run without a stop: a rerun that restarted at step 0
    # (even with the stopped run's weights) ends elsewhere and logs other values
    assert main([*args, f"--trainer.default_root_dir={tmp_path / 'reference'}"]) == 0
    reference = tmp_path / "reference" / "lenet5" / "version_0"
    ours, ref = (torch.load(r / "checkpoints" / "last.ckpt", weights_only=True) for r in (run, reference))
    assert ours["global_step"] == ref["global_step"] == 31
    assert_same_weights(ref["state_dict"], ours["state_dict"])
    assert_same_log(run / "metrics.csv", reference / "metrics.csv")
    assert no_network_attempts(tmp_path)


def _trained_checkpoint(data_root: Path, tmp_path: Path) -> Path:
    L.seed_everything(0, verbose=False)
    dm = MNISTDataModule(root=str(data_root), val_size=100, batch_size=64, download=False, verify=False)
    extras = trainer_extras(str(tmp_path), "net", 0, progress_bar=False)
    trainer = L.Trainer(max_steps=3, limit_val_batches=0, accelerator="cpu", enable_model_summary=False, **extras)
    trainer.fit(TinyDropoutNet(), dm)
    return tmp_path / "net" / "version_0" / "checkpoints" / "last.ckpt"


def _assert_untouched(last: Path, before: bytes) -> None:
    assert last.read_bytes() == before  # byte for byte the previous checkpoint
    ckpt = read_checkpoint(last)  # and still loadable
    assert ckpt["global_step"] == 3
    TinyDropoutNet().load_state_dict(ckpt["state_dict"])


def test_crash_while_writing_a_checkpoint_keeps_the_previous_one(
    data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    last = _trained_checkpoint(data_root, tmp_path)
    before = last.read_bytes()
    checkpoint = torch.load(last, weights_only=True)
    checkpoint["global_step"] = 99  # a newer checkpoint: written in place, it would change the file
    real_save = torch.save

    def crash_halfway(obj: object, f: object, *args: object, **kwargs: object) -> None:
        real_save(obj, f, *args, **kwargs)
        f.truncate(f.tell() // 2)  # type: ignore[attr-defined]
        raise OSError("disk full (injected)")

    monkeypatch.setattr(torch, "save", crash_halfway)
    with pytest.raises(OSError, match="injected"):
        AtomicCheckpointIO().save_checkpoint(checkpoint, last)
    monkeypatch.setattr(torch, "save", real_save)
    _assert_untouched(last, before)
    assert sorted(p.name for p in last.parent.iterdir()) == ["last.ckpt"]  # no partial temp file left


def test_failing_rename_keeps_the_previous_checkpoint(
    data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    last = _trained_checkpoint(data_root, tmp_path)
    before = last.read_bytes()
    checkpoint = torch.load(last, weights_only=True)
    checkpoint["global_step"] = 99

    def failing_replace(src: object, dst: object) -> None:
        raise OSError("rename failed (injected)")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="injected"):
        AtomicCheckpointIO().save_checkpoint(checkpoint, last)
    monkeypatch.undo()
    _assert_untouched(last, before)
    assert sorted(p.name for p in last.parent.iterdir()) == ["last.ckpt"]  # the temp file is removed


KILL_BEFORE_RENAME = """
import os, signal, sys, torch
from cnnbench.checkpoint import AtomicCheckpointIO
last = sys.argv[1]
checkpoint = torch.load(last, weights_only=True)
checkpoint["global_step"] = 99
def killed(src, dst):  # the new checkpoint is written and synced; the process dies before renaming it
    assert os.path.getsize(src) > 0
    os.kill(os.getpid(), signal.SIGKILL)
os.replace = killed
AtomicCheckpointIO().save_checkpoint(checkpoint, last)
"""


def test_kill_between_writing_and_renaming_keeps_the_previous_checkpoint(data_root: Path, tmp_path: Path) -> None:
    last = _trained_checkpoint(data_root, tmp_path)
    before = last.read_bytes()
    proc = subprocess.run(
        [sys.executable, "-c", KILL_BEFORE_RENAME, str(last)],
        capture_output=True,
        text=True,
        timeout=120,
        env=child_env(tmp_path),
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    _assert_untouched(last, before)
    # the orphaned temp file is never taken for a checkpoint: `--ckpt_path last` and Lightning
    # look for *.ckpt
    assert [p.suffix for p in last.parent.iterdir() if p != last] == [".tmp"]


def _flip_inside_the_largest_tensor(content: bytes) -> bytes:
    """Invert 64 bytes in the middle of the largest tensor's data: the archive stays whole
    and torch.load would read a wrong weight without complaint."""
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        member = max(archive.infolist(), key=lambda i: i.file_size)
    local = member.header_offset  # local header: 30 bytes, then the name and extra field
    start = local + 30 + int.from_bytes(content[local + 26 : local + 28], "little")
    start += int.from_bytes(content[local + 28 : local + 30], "little")
    middle = start + member.file_size // 2
    return content[:middle] + bytes(b ^ 0xFF for b in content[middle : middle + 64]) + content[middle + 64 :]


UNREADABLE = r"is not a readable checkpoint \(truncated or corrupt\?\)"
DAMAGE = {  # damage: (bytes from the good file's content, what read_checkpoint says: a regex)
    "truncate": (lambda c: c[: len(c) // 3], UNREADABLE + ": the archive is incomplete"),
    "flipped": (_flip_inside_the_largest_tensor, UNREADABLE + r": \S+ is damaged"),
    "garbage": (lambda c: b"\x80\x04garbage" * 10, "is not a checkpoint"),
    "empty": (lambda c: b"", "is empty"),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_truncated_or_corrupt_checkpoint_is_a_clear_error(
    damage: str, data_root: Path, workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["fit", "--model", "lenet5", *data_args(data_root), "--trainer.max_steps=2", *QUIET]) == 0
    good = workdir / "runs" / "lenet5" / "version_0" / "checkpoints" / "last.ckpt"
    bad = workdir / "bad.ckpt"
    make, message = DAMAGE[damage]
    bad.write_bytes(make(good.read_bytes()))
    capsys.readouterr()
    for command in (
        ["test", "--ckpt_path", str(bad)],
        ["fit", "--model", "lenet5", *data_args(workdir), "--ckpt_path", str(bad)],
    ):
        assert main([*command, *QUIET]) == 2
        err = capsys.readouterr().err
        # one line naming the file (the CLI may word it its own way), no traceback
        assert len(err.strip().splitlines()) == 1 and f"error: {bad}" in err and "checkpoint" in err, err
    with pytest.raises(CheckpointError, match=f"bad.ckpt {message}"):
        load_from_checkpoint(bad)
    # and Lightning's own loading (trainer.fit(ckpt_path=...)) goes through the same check
    with pytest.raises(CheckpointError, match=f"bad.ckpt {message}"):
        AtomicCheckpointIO().load_checkpoint(bad)
