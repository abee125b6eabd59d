"""Issue 18 item 5 on the command line, in subprocesses as a user meets them: the one-line
error comes first, ``--data.image_size`` needs no ``--data``, a failed download keeps its fix
and leaves the data root as it was, ``predict`` on a folder without images fails with one
line, and a fit without validation names its ``last.ckpt``."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from cli.test_cli import FAST, run_cli
from fakes import data_args, write_fake_mnist

TESTS = Path(__file__).resolve().parent


def closed_loopback_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # nothing listens once the socket is closed


def offline_env() -> dict[str, str]:
    """No way out: every download goes to a closed loopback port (no DNS lookup either),
    and the netguard refuses any other connection."""
    proxy = f"http://127.0.0.1:{closed_loopback_port()}"
    path = os.pathsep.join([str(TESTS / "netguard"), os.environ.get("PYTHONPATH", "")])
    return {"http_proxy": proxy, "https_proxy": proxy, "HTTP_PROXY": proxy, "HTTPS_PROXY": proxy, "PYTHONPATH": path}


def listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--model.optimizer", "adm"], "Unknown optimizer 'adm'"),  # a bad value: found when the model is built
        (["--data.batch_sise", "64"], "Did you mean --data.batch_size"),  # an unknown option: found by the parser
    ],
)
def test_the_one_line_error_comes_before_any_other_output(
    flags: list[str], expected: str, tmp_path: Path, workdir: Path
) -> None:
    write_fake_mnist(tmp_path / "data", n_train=200, n_test=20)
    proc = run_cli("fit", "--model", "lenet5", *data_args(tmp_path / "data"), *flags, *FAST)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert proc.stdout == ""
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert lines[0].startswith("cnnbench fit: error:") and expected in lines[0], proc.stderr
    assert len(lines) <= 3 and "Seed set" not in proc.stderr, proc.stderr


@pytest.fixture(scope="module")
def max_steps_fit(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """``cnnbench fit --model lenet5 --data.image_size 28`` (no --data) for 2 steps: no validation."""
    work = tmp_path_factory.mktemp("fit")
    write_fake_mnist(work / "data", n_train=200, n_test=20)
    args = ["fit", "--model", "lenet5", "--data.image_size", "28", *data_args(work / "data"), *FAST]
    proc = subprocess_in(work, *args, "--trainer.max_steps=2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return work / "runs" / "lenet5" / "version_0", proc.stdout


def subprocess_in(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cnnbench", *args],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=cwd,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def test_data_image_size_works_without_naming_the_data_set(max_steps_fit: tuple[Path, str]) -> None:
    run, _ = max_steps_fit
    assert "image_size: 28" in (run / "config.yaml").read_text()
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["hyper_parameters"]["input_size"] == 28  # linked into the model


def test_a_fit_without_validation_prints_its_last_checkpoint(max_steps_fit: tuple[Path, str]) -> None:
    run, out = max_steps_fit
    assert "best checkpoint:  (none: no validation)" in out
    assert f"last checkpoint:  {(run / 'checkpoints' / 'last.ckpt').resolve()}" in out


def test_predict_on_a_folder_without_images_fails_with_one_line(
    max_steps_fit: tuple[Path, str], tmp_path: Path
) -> None:
    run, _ = max_steps_fit
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    (tmp_path / "empty" / "notes.txt").write_text("no image here\n")
    proc = run_cli("predict", "--ckpt_path", str(run / "checkpoints" / "last.ckpt"), str(tmp_path / "empty"))
    assert proc.returncode != 0
    assert proc.stdout == ""  # no header of an empty table
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "empty: error: no image files" in lines[0] and ".png" in lines[0], proc.stderr


@pytest.mark.parametrize(("data", "root_exists"), [("mnist", True), ("cifar10", False)])
def test_failed_download_keeps_its_fix_line_and_leaves_the_data_root_as_it_was(
    data: str, root_exists: bool, tmp_path: Path, workdir: Path
) -> None:
    parent = tmp_path / "user"
    root = parent / "datasets"
    (parent / "notes").mkdir(parents=True)
    if root_exists:
        (root / "other").mkdir(parents=True)
        (root / "other" / "keep.bin").write_bytes(b"the user's")
    before = listing(parent)
    model = "lenet5" if data == "mnist" else "alexnet_cifar"
    proc = run_cli("fit", "--model", model, "--data", data, "--data.root", str(root), *FAST, env=offline_env())
    assert proc.returncode == 2, proc.stderr[-3000:]
    lines = [ln.strip() for ln in proc.stderr.splitlines() if ln.strip() and not ln.startswith(("GPU", "TPU", "Seed"))]
    assert lines[0].startswith("cnnbench fit: error:") and "download into" in lines[0], proc.stderr
    assert len(lines) == 2 and lines[1].startswith("Fix:"), proc.stderr
    assert listing(parent) == before  # no empty MNIST/raw/, no partial archive, no new data root
    assert not (workdir / "runs").exists()
