"""Exact resume through the CLI: a ``cnnbench fit`` stopped anywhere (SIGTERM, a crash, at an
epoch boundary, during validation) and continued with ``--ckpt_path last`` ends with the same
weights and logs the same metric values as one uninterrupted ``cnnbench fit``.

Every case is compared with one uninterrupted reference run of the same command (shared by
the module), never with the resumed run's own bookkeeping: a resume that restarted at step 0
with the loaded weights, or lost the running epoch sums, logs other values and fails.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from fakes import data_args, write_fake_mnist
from helpers import QUIET

from cnnbench.cli import main

# 356 training images - 100 for validation = 256 = 8 steps of 32 per epoch; 2 epochs
STEPS_PER_EPOCH = 8
COMMAND = [
    "fit",
    "--model",
    "helpers.TinyDropoutNet",
    "--model.lr=0.05",  # dropout: exact resume needs the RNG state
    "--trainer.max_epochs=2",
    "--seed_everything=3",
    *QUIET,
    "--trainer.log_every_n_steps=3",  # a resume inside a logging window must keep the window's loss sum
]
NOT_COMPARED = {"train/img_s"}  # a timing


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cli_resume") / "data"
    write_fake_mnist(root, n_train=356, n_test=40)
    return root


def fit(data: Path, run_dir: Path, *extra: str) -> int:
    return main([*COMMAND, *data_args(data), f"--trainer.default_root_dir={run_dir}", *extra])


def run_folder(run_dir: Path) -> Path:
    (folder,) = (run_dir / "tinydropoutnet").iterdir()  # resuming never opens a second version
    return folder


@pytest.fixture(scope="module")
def reference(data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("reference")
    assert fit(data, run_dir) == 0
    return run_folder(run_dir)


def logged(folder: Path) -> list[tuple[int, int, str, float]]:
    """(step, epoch, metric, value) of every logged value but timings, sorted."""
    with (folder / "metrics.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    return sorted(
        (int(r["step"]), int(r["epoch"]), k, float(v))
        for r in rows
        for k, v in r.items()
        if k not in ("step", "epoch") and k not in NOT_COMPARED and v
    )


def assert_same_run(folder: Path, reference: Path, steps: int = 2 * STEPS_PER_EPOCH, extra: tuple = ()) -> None:
    """Same final step and weights (1e-6), and the same logged values (1e-6) but for the
    ``extra`` (step, epoch, metric) entries, which must be in ``folder``'s log."""
    ours, ref = (torch.load(f / "checkpoints" / "last.ckpt", weights_only=True) for f in (folder, reference))
    assert ours["global_step"] == ref["global_step"] == steps
    assert ours["state_dict"].keys() == ref["state_dict"].keys()
    for name, value in ref["state_dict"].items():
        torch.testing.assert_close(ours["state_dict"][name], value, atol=1e-6, rtol=0, msg=name)
    got, want = logged(folder), logged(reference)
    assert {g[:3] for g in got} >= set(extra)
    got = [g for g in got if g[:3] not in extra]
    assert [g[:3] for g in got] == [w[:3] for w in want]  # each metric once, at the same step and epoch
    for g, w in zip(got, want):
        assert g[3] == pytest.approx(w[3], abs=1e-6), f"{g[2]} at step {g[0]}: {g[3]} != {w[3]} (uninterrupted)"


def stop_at(hook: str, how: str, **where: int) -> str:
    spec = {"class_path": "probes.StopAt", "init_args": {"hook": hook, "how": how, **where}}
    return f"--trainer.callbacks+={json.dumps(spec)}"


CASES = {
    "sigterm_mid_epoch": ("train_batch_start", "sigterm", {"step": 5}),
    "exception_mid_epoch": ("train_batch_start", "raise", {"step": STEPS_PER_EPOCH + 4}),
    "exception_at_epoch_end": ("train_epoch_end", "raise", {"epoch": 0}),  # after validation and its checkpoint
    "sigterm_at_epoch_end": ("train_batch_start", "sigterm", {"step": STEPS_PER_EPOCH - 1}),  # lands in validation
    "exception_at_epoch_start": ("train_epoch_start", "raise", {"epoch": 1}),
    "sigterm_during_validation": ("validation_batch_start", "sigterm", {"epoch": 0, "batch": 0}),
    "exception_during_validation": ("validation_batch_start", "raise", {"epoch": 0, "batch": 1}),
}


@pytest.mark.parametrize("case", list(CASES))
def test_fit_stopped_then_resumed_with_ckpt_path_last_equals_an_uninterrupted_fit(
    case: str, data: Path, reference: Path, tmp_path: Path
) -> None:
    hook, how, where = CASES[case]
    if how == "sigterm":
        assert fit(data, tmp_path, stop_at(hook, how, **where)) == 143
    else:
        with pytest.raises(RuntimeError, match="injected stop"):
            fit(data, tmp_path, stop_at(hook, how, **where))
    folder = run_folder(tmp_path)
    stopped_at = torch.load(folder / "checkpoints" / "last.ckpt", weights_only=True)["global_step"]
    assert 0 < stopped_at < 2 * STEPS_PER_EPOCH  # really interrupted
    assert fit(data, tmp_path, "--ckpt_path", "last") == 0
    assert_same_run(folder, reference)


def test_fit_ended_by_max_steps_mid_epoch_then_extended_equals_one_longer_fit(data: Path, tmp_path: Path) -> None:
    # the "train 5 steps, look, then continue to 12" workflow; no schedule sized by the limit
    constant_lr = "--model.scheduler=none"
    assert fit(data, tmp_path / "reference", constant_lr, "--trainer.max_steps=12") == 0
    assert fit(data, tmp_path / "run", constant_lr, "--trainer.max_steps=5") == 0
    assert fit(data, tmp_path / "run", constant_lr, "--trainer.max_steps=12", "--ckpt_path", "last") == 0
    # the 5-step fit was complete: it logged its epoch's train/acc at its end (step 4)
    assert_same_run(
        run_folder(tmp_path / "run"), run_folder(tmp_path / "reference"), steps=12, extra=((4, 0, "train/acc"),)
    )
