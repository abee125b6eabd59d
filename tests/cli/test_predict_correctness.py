"""``cnnbench predict`` classifies an image file exactly as the model classifies the same
image taken from the data module (padded and normalized like training)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from fakes import data_args, digit_images, write_fake_mnist
from PIL import Image

import cnnbench
from cnnbench.cli import main
from cnnbench.data import MNISTDataModule

QUIET = ["--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false", "--trainer.accelerator=cpu"]


def test_predict_on_png_files_equals_the_model_on_the_data_modules_normalized_tensor(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "data"
    write_fake_mnist(root, n_train=400, n_test=6)
    args = [
        "fit",
        "--model",
        "lenet5",
        *data_args(root),
        "--trainer.max_steps=8",
        f"--trainer.default_root_dir={tmp_path}",
    ]
    assert main([*args, *QUIET]) == 0
    ckpt = tmp_path / "lenet5" / "version_0" / "checkpoints" / "last.ckpt"

    # the test images as 28×28 greyscale PNGs, the way a user has them
    images, _ = digit_images(6, 28, seed=1)  # what write_fake_mnist wrote as the test split
    files = [tmp_path / f"digit{i}.png" for i in range(6)]
    for img, path in zip(images, files):
        Image.fromarray(img, mode="L").save(path)
    capsys.readouterr()
    assert main(["predict", "--ckpt_path", str(ckpt), "--top_k", "10", "--format", "json", *map(str, files)]) == 0
    printed = json.loads(capsys.readouterr().out)

    # reference: the same images from the data module's test split, through its normalize
    dm = MNISTDataModule(root=str(root), val_size=100, download=False, verify=False)
    dm.setup()
    x, _ = dm.splits["test"]
    assert torch.equal(x[:, 0, 2:30, 2:30], torch.from_numpy(images))  # the same pixels, padded 28 → 32
    model = cnnbench.load_from_checkpoint(ckpt).eval()
    with torch.no_grad():
        probs = model(dm.normalize(x)).softmax(-1)
    assert [item["file"] for item in printed] == [str(f) for f in files]
    for item, p in zip(printed, probs):
        assert int(item["top"][0]["class"]) == int(p.argmax())  # the top class first
        got = {int(t["class"]): t["prob"] for t in item["top"]}
        np.testing.assert_allclose([got[k] for k in range(10)], p.numpy(), atol=2e-6)  # printed with 6 decimals
    assert probs.max(-1).values.min() < 0.99  # not saturated: an unnormalized input would change what is printed
