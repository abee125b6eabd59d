"""Fault 5: DDP with 2 CPU processes, and a rank that raises."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from fakes import data_args, write_idx
from helpers import QUIET, no_network_attempts, start

from cnnbench.checkpoint import load_from_checkpoint
from cnnbench.data import MNISTDataModule


def _processes_mentioning(marker: str) -> list[str]:
    out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if marker in line and "ps -eo" not in line]


def test_ddp_two_processes_one_run_one_set_of_checkpoints_synced_metrics(
    data_root: Path, workdir: Path, tmp_path: Path
) -> None:
    ddp = ["--trainer.devices=2", "--trainer.strategy=ddp"]
    proc = start(
        tmp_path,
        "fit",
        "--model",
        "lenet5",
        *data_args(data_root),
        "--trainer.max_epochs=1",
        *QUIET,
        *ddp,
        "--logger",
        "wandb",
        "--test_after_fit=true",
    )
    output = proc.communicate(timeout=400)[0]
    assert proc.returncode == 0, output[-3000:]
    run = workdir / "runs" / "lenet5"
    assert [p.name for p in run.iterdir()] == ["version_0"]
    assert len(list((run / "version_0" / "wandb").glob("offline-run-*"))) == 1  # rank 0 only
    ckpts = sorted(p.name for p in (run / "version_0" / "checkpoints").iterdir())
    assert len(ckpts) == 2 and "last.ckpt" in ckpts
    assert re.search(r"test/acc\s*│\s*[0-9.]+", output)
    assert (
        torch.load(run / "version_0" / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 1000 // 2 // 32
    )

    # Metrics are synced across ranks. Relabel the test split with the checkpoint's own
    # predictions, shifted by one class on the odd indices: the model is right on every
    # even-indexed image and wrong on every odd one. Under DDP rank r evaluates indices r,
    # r+2, ..., so an unsynced accuracy is 1.0 or 0.0; the global one is 0.5 exactly.
    best = next(p for p in (run / "version_0" / "checkpoints").iterdir() if p.name.startswith("best"))
    model = load_from_checkpoint(best).eval()
    dm = MNISTDataModule(root=str(data_root), val_size=100, download=False, verify=False)
    dm.setup()
    x, _ = dm.splits["test"]
    with torch.no_grad():
        predicted = model(dm.normalize(x)).argmax(-1)
    labels = predicted.clone()
    labels[1::2] = (labels[1::2] + 1) % 10
    write_idx(data_root / "MNIST" / "raw" / "t10k-labels-idx1-ubyte", labels.numpy().astype(np.uint8))
    single_process = float((predicted == labels).float().mean())  # plain torch, one process
    assert single_process == 0.5
    test = start(tmp_path, "test", "--ckpt_path", str(best), *QUIET, *ddp)
    test_out = test.communicate(timeout=300)[0]
    assert test.returncode == 0, test_out[-2000:]
    assert float(re.findall(r"test/acc\s*│\s*([0-9.]+)", test_out)[-1]) == pytest.approx(single_process, abs=1e-6)
    assert no_network_attempts(tmp_path)


def test_a_rank_that_raises_ends_the_whole_run_quickly(data_root: Path, workdir: Path, tmp_path: Path) -> None:
    marker = f"--trainer.default_root_dir={workdir / 'failing'}"
    started = time.monotonic()
    proc = start(
        tmp_path,
        "fit",
        "--model",
        "helpers.FailOnRank",
        *data_args(data_root),
        "--trainer.max_epochs=1",
        *QUIET,
        "--trainer.devices=2",
        "--trainer.strategy=ddp",
        marker,
        CNNBENCH_FAIL_RANK="1",
    )
    output = proc.communicate(timeout=300)[0]
    assert proc.returncode != 0
    assert time.monotonic() - started < 120
    assert "injected failure on rank 1" in output
    time.sleep(1)
    assert _processes_mentioning(marker) == []  # no orphaned rank left behind
