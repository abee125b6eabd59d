"""Issue 12 item 10: ``cnnbench predict`` output formats with a header, a brightness
warning for images unlike the training data, help for every option."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
from cli.test_cli import FAST
from fakes import data_args
from PIL import Image

from cnnbench.cli import main
from cnnbench.cli.predict import brightness_warning, build_parser


@pytest.fixture
def checkpoint(mnist_root: Path, workdir: Path) -> str:
    assert main(["fit", "--model", "lenet5", *data_args(mnist_root), "--trainer.max_steps=3", *FAST]) == 0
    return str(workdir / "runs" / "lenet5" / "version_0" / "checkpoints" / "last.ckpt")


def digit(path: Path, inverted: bool = False) -> Path:
    arr = np.zeros((28, 28), np.uint8)
    arr[8:20, 12:16] = 255  # a bright stroke on black, like MNIST (mean ≈ 0.06)
    Image.fromarray(255 - arr if inverted else arr).save(path)
    return path


def test_formats_have_headers_and_agree(checkpoint: str, workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = [str(digit(workdir / "a.png")), str(digit(workdir / "b.png"))]
    capsys.readouterr()
    assert main(["predict", "--ckpt_path", checkpoint, "--format", "csv", "--top_k", "2", *files]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [r["file"] for r in rows] == files and set(rows[0]) == {"file", "class_1", "prob_1", "class_2", "prob_2"}
    assert float(rows[0]["prob_1"]) >= float(rows[0]["prob_2"])
    assert main(["predict", "--ckpt_path", checkpoint, "--format", "json", "--top_k", "2", *files]) == 0
    items = json.loads(capsys.readouterr().out)
    assert [i["file"] for i in items] == files
    assert (
        items[0]["top"][0]["class"] == rows[0]["class_1"]
        and abs(items[0]["top"][0]["prob"] - float(rows[0]["prob_1"])) < 1e-4
    )
    assert main(["predict", "--ckpt_path", checkpoint, *files]) == 0  # default: an aligned table
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["file", "class", "prob"] and lines[1].split()[0] == files[0]


def test_inverted_digit_gets_a_brightness_warning(
    checkpoint: str, workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    normal, inverted = digit(workdir / "normal.png"), digit(workdir / "inverted.png", inverted=True)
    capsys.readouterr()
    assert main(["predict", "--ckpt_path", checkpoint, str(normal), str(inverted)]) == 0
    out, err = capsys.readouterr()
    assert "inverted.png: warning: mean brightness 0.94" in err and "inverted colours?" in err
    assert "normal.png" not in err and len(out.splitlines()) == 3  # still predicted, header + 2 rows


def test_brightness_threshold_by_hand() -> None:
    mnist = {"mean": [0.1307], "std": [0.3081]}  # MNIST's statistics: warn beyond 0.1307 ± 1.5·0.3081
    assert brightness_warning(0.59, mnist) is None and brightness_warning(0.60, mnist) is not None
    assert brightness_warning(0.0, mnist) is None  # a blank black page is close to MNIST's mean


def test_every_option_has_help() -> None:
    parser = build_parser()
    for action in parser._actions:
        assert action.help, action.option_strings
    text = parser.format_help()
    assert "--device" in text and "cuda" in text and "--batch_size" in text and "{table,csv,json}" in text


def test_predict_checks_and_reads_the_checkpoint_file_once(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # issue 19: it was checked three times and read twice (a CRC pass and an unpickling each)
    import torch

    import cnnbench.checkpoint

    fixture = str(Path(__file__).parents[1] / "fixtures" / "lenet5-avg-same-v0.1.0.ckpt")
    checks: list[object] = []
    loads: list[object] = []
    real_check, real_load = cnnbench.checkpoint.check_checkpoint_file, torch.load
    monkeypatch.setattr(cnnbench.checkpoint, "check_checkpoint_file", lambda p: checks.append(p) or real_check(p))
    monkeypatch.setattr(torch, "load", lambda f, *a, **k: loads.append(f) or real_load(f, *a, **k))
    Image.fromarray(np.full((32, 32), 30, np.uint8)).save(workdir / "grey.png")
    assert main(["predict", "--ckpt_path", fixture, str(workdir / "grey.png")]) == 0, capsys.readouterr().err
    assert len(checks) == 1 and len(loads) == 1
