"""Issue 18 item 1: the README's own commands. ``cnnbench fit --model lenet5`` with the
model's default recipe (no length flag), stopped by Ctrl-C (SIGINT) or SIGTERM from outside,
then ``cnnbench fit --model lenet5 --ckpt_path last`` (plus only where the data is) ends with
the weights and logged values of one uninterrupted run.

The data set is sized so that the recipe's 8 epochs are 16 steps of 128 images: the resumed
run must take its length from the recipe or the run's saved config.yaml (a resume sized by
Lightning's 1000-epoch default is refused by the schedule check), and its settings such as
``--data.val_size`` and ``--trainer.log_every_n_steps`` from the run.
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest
import torch
from fakes import write_fake_mnist
from helpers import start
from test_cli_resume import assert_same_run

from cnnbench.cli import main

STEPS = 16  # 8 epochs (LeNet-5's recipe) of 256 / 128 batches
WHERE = ["--data.download=false", "--data.verify=false"]  # the fake files have no official MD5s
# the run's own settings: not in the resume command, so they must come from the run itself
RUN_SETTINGS = ["--data.val_size=100", "--trainer.log_every_n_steps=1", "--trainer.enable_progress_bar=false"]
SLOW = {"class_path": "helpers.SlowSteps", "init_args": {"seconds": 0.15}}  # a signal lands mid-run


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("interrupt") / "data"
    write_fake_mnist(root, n_train=356, n_test=20)
    return root


def where(data: Path) -> list[str]:
    return ["--data.root", str(data), *WHERE]


@pytest.fixture(scope="module")
def reference(data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("reference")
    args = ["fit", "--model", "lenet5", *where(data), *RUN_SETTINGS, f"--trainer.default_root_dir={run_dir}"]
    assert main(args) == 0
    return run_dir / "lenet5" / "version_0"


def run_to_end(tmp_path: Path, *args: str) -> tuple[int, str]:
    proc = start(tmp_path, *args)
    out, _ = proc.communicate(timeout=300)
    return proc.returncode, out


def interrupt(tmp_path: Path, data: Path, how: signal.Signals) -> tuple[int, str]:
    """Start the default-recipe fit, send ``how`` once step 5 of 16 is done; (exit code, output)."""
    progress = tmp_path / "progress"
    args = ["fit", "--model", "lenet5", *where(data), *RUN_SETTINGS, f"--trainer.callbacks+={json.dumps(SLOW)}"]
    proc = start(tmp_path, *args, CNNBENCH_PROGRESS_FILE=str(progress))
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if progress.exists() and progress.read_text().strip() and int(progress.read_text()) >= 5:
            break
        time.sleep(0.05)
    proc.send_signal(how)
    out, _ = proc.communicate(timeout=240)
    return proc.returncode, out


@pytest.mark.parametrize(("how", "code", "name"), [(signal.SIGINT, 130, "Ctrl-C"), (signal.SIGTERM, 143, "SIGTERM")])
def test_default_recipe_fit_interrupted_then_the_readme_resume_command_equals_an_uninterrupted_fit(
    how: signal.Signals,
    code: int,
    name: str,
    data: Path,
    reference: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)  # the children inherit it: runs/ is found the way a user's shell finds it
    stopped, out = interrupt(tmp_path, data, how)
    assert stopped == code, out[-3000:]
    hint = f"cnnbench: stopped by {name}; last.ckpt was saved: continue with --ckpt_path last"
    assert out.count(hint) == 1, out[-3000:]
    assert "weights_only" not in out and "Traceback" not in out and "KeyboardInterrupt" not in out, out[-3000:]
    folder = work / "runs" / "lenet5" / "version_0"
    stopped_at = torch.load(folder / "checkpoints" / "last.ckpt", weights_only=True)["global_step"]
    assert 5 <= stopped_at < STEPS, out[-3000:]  # really interrupted

    resumed, out = run_to_end(tmp_path, "fit", "--model", "lenet5", "--ckpt_path", "last", *where(data))
    assert resumed == 0, out[-3000:]
    assert "max_epochs` was not set" not in out and "schedule" not in out, out[-3000:]
    assert sorted(p.name for p in (work / "runs" / "lenet5").iterdir()) == ["version_0"]
    assert_same_run(folder, reference, steps=STEPS)


def printed_config(*args: str, capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit):
        main(["fit", *args, "--print_config"])
    return capsys.readouterr().out


def test_resume_length_comes_from_the_run_then_the_recipe_and_a_length_given_now_replaces_it(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["fit", "--model", "lenet5", *where(data), *RUN_SETTINGS, "--trainer.max_epochs=3"]) == 0
    capsys.readouterr()
    resume = ["--model", "lenet5", "--ckpt_path", "last", *where(data)]
    config = printed_config(*resume, capsys=capsys)
    assert "max_epochs: 3" in config and "log_every_n_steps: 1" in config and "val_size: 100" in config
    assert "max_epochs: 2" in printed_config(*resume, "--trainer.max_epochs=2", capsys=capsys)  # flags win
    config = printed_config(*resume, "--trainer.max_steps=5", capsys=capsys)
    assert "max_steps: 5" in config and "max_epochs: null" in config  # a new length replaces the saved one
    (tmp_path / "runs" / "lenet5" / "version_0" / "config.yaml").unlink()
    config = printed_config(*resume, capsys=capsys)
    assert "max_epochs: 8" in config and "val_size: 100" in config  # the recipe; the data from the checkpoint
