"""Fault injectors used by the reliability tests (importable by their subprocesses)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import nn

from cnnbench.models.base import ImageClassifier

TESTS = Path(__file__).resolve().parents[1]


class SlowSteps(L.Callback):
    """Sleep after each training step so a signal reliably lands mid-epoch."""

    def __init__(self, seconds: float = 0.05) -> None:
        self.seconds = seconds

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        time.sleep(self.seconds)
        progress = os.environ.get("CNNBENCH_PROGRESS_FILE")
        if progress:
            with open(progress, "w") as fh:
                fh.write(str(trainer.global_step))


class FailAtStep(L.Callback):
    """Raise at the start of global step ``step`` (on ``rank`` only, if given)."""

    def __init__(self, step: int, rank: int | None = None) -> None:
        self.step, self.rank = step, rank

    def on_train_batch_start(self, trainer: L.Trainer, *args: Any) -> None:
        if trainer.global_step == self.step and (self.rank is None or trainer.global_rank == self.rank):
            raise RuntimeError(f"injected failure at step {self.step} on rank {trainer.global_rank}")


class TinyDropoutNet(ImageClassifier):
    """A small CNN with dropout, so that exact resume depends on restoring the RNG."""

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 1,
        input_size: int = 32,
        pool: str = "max",
        padding: str = "same",
        padding_mode: str = "zeros",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.features = nn.Sequential(nn.Conv2d(in_channels, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(4))
        self.classifier = nn.Sequential(nn.Dropout(0.5), nn.Linear(4 * (input_size // 4) ** 2, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).flatten(1))


class FailOnRank(TinyDropoutNet):
    """Raises in its 3rd training step on the rank named by $CNNBENCH_FAIL_RANK."""

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        if self.global_step == 2 and str(self.global_rank) == os.environ.get("CNNBENCH_FAIL_RANK", "1"):
            raise RuntimeError(f"injected failure on rank {self.global_rank}")
        return super().training_step(batch, batch_idx)


class CrashNet(TinyDropoutNet):
    """A grid cell that fails in its 2nd training step the way ``crash`` says.

    ``raise`` (an exception), ``segfault`` (a real SIGSEGV), ``exit`` (``os._exit(3)``),
    ``hang`` (sleeps far past any timeout), ``hold`` (waits while ``$CNNBENCH_HOLD_FILE``
    exists), ``none``.
    Every fit appends a line to ``$CNNBENCH_COUNT_FILE`` (if set), so a test can count
    how often each cell really ran.
    """

    def __init__(self, crash: str = "none", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.crash = crash

    def on_fit_start(self) -> None:
        super().on_fit_start()
        count = os.environ.get("CNNBENCH_COUNT_FILE")
        if count:
            with open(count, "a") as fh:  # one short append per fit: atomic between processes
                fh.write(f"{self.crash} {self.hparams.get('pool', '?')} {os.getpid()}\n")

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        if self.global_step == 1:
            if self.crash == "raise":
                raise RuntimeError("injected failure in a cell")
            if self.crash == "segfault":
                import ctypes

                ctypes.string_at(0)  # reads address 0: SIGSEGV
            if self.crash == "exit":
                os._exit(3)
            if self.crash == "hang":
                time.sleep(600)
            while self.crash == "hold" and os.path.exists(os.environ.get("CNNBENCH_HOLD_FILE", "")):
                time.sleep(0.05)
        return super().training_step(batch, batch_idx)


def descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` (children, grandchildren, ...), from /proc."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z":
            parents[int(stat.parent.name)] = int(fields[1])
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def forkserver_processes() -> set[int]:
    """Our descendants that are a fork server or one of its cells (forks keep its command line)."""
    found = set()
    for pid in descendants(os.getpid()):
        try:
            if b"cnnbench.bench.forkserver" in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.add(pid)
        except OSError:
            pass
    return found


def alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


# ----------------------------------------------------------------------------- subprocess helpers
QUIET = [
    "--trainer.enable_progress_bar=false",
    "--trainer.enable_model_summary=false",
    "--trainer.log_every_n_steps=1",
    "--trainer.accelerator=cpu",
]


def child_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    path = os.pathsep.join([str(TESTS / "netguard"), str(TESTS / "reliability"), os.environ.get("PYTHONPATH", "")])
    return {
        **os.environ,
        "PYTHONPATH": path,
        "PYTHONUNBUFFERED": "1",
        "CNNBENCH_NETGUARD_LOG": str(tmp_path / "network.log"),
        **extra,
    }


def start(tmp_path: Path, *args: str, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "cnnbench", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=child_env(tmp_path, **env),
        start_new_session=True,
    )


def no_network_attempts(tmp_path: Path) -> bool:
    log = tmp_path / "network.log"
    return not log.exists() or not log.read_text().strip()
