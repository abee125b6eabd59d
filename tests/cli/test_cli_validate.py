"""``cnnbench validate`` from a checkpoint: its val/acc equals a plain-torch evaluation of the
same weights on the same seeded validation split."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from fakes import data_args, write_fake_mnist

from cnnbench.cli import main
from cnnbench.data import MNISTDataModule
from cnnbench.models import create_model

FAST = ["--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false", "--trainer.accelerator=cpu"]


def test_validate_from_a_checkpoint_equals_a_plain_torch_evaluation(
    tmp_path: Path, workdir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "data"
    monkeypatch.setattr(MNISTDataModule, "files", write_fake_mnist(root))
    assert main(["fit", "--model", "lenet5", *data_args(root), "--trainer.max_steps=12", *FAST]) == 0
    ckpt = workdir / "runs" / "lenet5" / "version_0" / "checkpoints" / "last.ckpt"
    capsys.readouterr()
    assert main(["validate", "--ckpt_path", str(ckpt), *FAST]) == 0
    out = capsys.readouterr().out
    reported = float(re.search(r"val/acc\s*[│|]\s*([0-9.]+)", out).group(1))  # type: ignore[union-attr]

    # the reference: the checkpoint's weights, the seeded 100-image validation split, by hand
    stored = torch.load(ckpt, weights_only=True)
    model = create_model("lenet5")
    model.load_state_dict(stored["state_dict"])
    model.eval()
    dm = MNISTDataModule(root=str(root), download=False, verify=False, val_size=100, batch_size=32)
    dm.setup()
    images, labels = dm.splits["val"]
    assert images.shape[1:] == (1, 32, 32)  # the 28×28 digits, zero-padded to LeNet-5's 32×32 when read
    x = (images.float() / 255.0 - 0.1307) / 0.3081
    with torch.no_grad():
        expected = (model(x).argmax(-1) == labels).float().mean().item()
    assert len(labels) == 100
    assert reported == pytest.approx(expected, abs=1e-4)
