"""cnnbench.checkpoint: the one owner of the checkpoint format writes the metadata the previous
release wrote, and the models reach it only through the loader it installs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from test_checkpoint_fixture import CKPT, DATA, FAST

from cnnbench.checkpoint import CheckpointError, checkpoint_info, load_model, read_checkpoint
from cnnbench.cli import main
from cnnbench.models import ImageClassifier

# the command that wrote tests/fixtures/lenet5-avg-same-v0.1.0.ckpt (see test_checkpoint_fixture.py)
FIXTURE_FIT = ["fit", "--model", "lenet5", "--model.pool", "avg", "--model.padding", "same", *DATA]
FIXTURE_FIT += ["--data.batch_size", "16", "--trainer.max_steps", "3", "--seed_everything", "7", *FAST]


def test_cnnbench_fit_writes_the_metadata_release_0_1_0_wrote(workdir: Path) -> None:
    # the reference: the metadata release 0.1.0 stored for the same command (written by the model then)
    old = checkpoint_info(torch.load(CKPT, weights_only=True))
    assert main(FIXTURE_FIT) == 0
    (last,) = workdir.rglob("last.ckpt")
    new = checkpoint_info(read_checkpoint(last))
    assert {k: new.get(k) for k in old} == old


def test_the_model_class_alone_reads_no_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # without cnnbench.checkpoint's loader a base class cannot pick the model: one line saying where to go
    monkeypatch.setattr(ImageClassifier, "checkpoint_loader", None)
    with pytest.raises(ValueError, match=r"cnnbench\.load_from_checkpoint\(path\)"):
        ImageClassifier.load_from_checkpoint(tmp_path / "any.ckpt")


def test_models_load_through_the_checkpoint_module(tmp_path: Path) -> None:
    assert ImageClassifier.checkpoint_loader is load_model
    (tmp_path / "empty.ckpt").write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty.ckpt is empty"):  # check_checkpoint_file's words
        ImageClassifier.load_from_checkpoint(tmp_path / "empty.ckpt")
