"""Fault 5: DDP with 2 CPU processes, and a rank that raises."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import torch
from fakes import data_args
from helpers import QUIET, no_network_attempts, start


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
    ddp_acc = float(re.findall(r"test/acc\s*│\s*([0-9.]+)", output)[-1])
    # the same checkpoint tested by one process gives the same accuracy: metrics are synced
    best = next(p for p in (run / "version_0" / "checkpoints").iterdir() if p.name.startswith("best"))
    single = start(tmp_path, "test", "--ckpt_path", str(best), *QUIET)
    single_out = single.communicate(timeout=200)[0]
    assert single.returncode == 0, single_out[-2000:]
    assert float(re.findall(r"test/acc\s*│\s*([0-9.]+)", single_out)[-1]) == ddp_acc
    assert (
        torch.load(run / "version_0" / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 1000 // 2 // 32
    )
    assert no_network_attempts(tmp_path)


def test_a_rank_that_raises_ends_the_whole_run_quickly(data_root: Path, workdir: Path, tmp_path: Path) -> None:
    marker = f"--trainer.default_root_dir={workdir / 'failing'}"
    started = time.monotonic()
    proc = start(tmp_path, "fit", "--model", "helpers.FailOnRank", *data_args(data_root), "--trainer.max_epochs=1", *QUIET,
                 "--trainer.devices=2", "--trainer.strategy=ddp", marker, CNNBENCH_FAIL_RANK="1")  # fmt: skip
    output = proc.communicate(timeout=300)[0]
    assert proc.returncode != 0
    assert time.monotonic() - started < 120
    assert "injected failure on rank 1" in output
    time.sleep(1)
    assert _processes_mentioning(marker) == []  # no orphaned rank left behind
