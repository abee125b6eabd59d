"""``cnnbench fit --trainer.precision``: the training forward pass really runs in that precision."""

from __future__ import annotations

from pathlib import Path

import pytest
from fakes import data_args, write_fake_mnist

from cnnbench.cli import main

QUIET = [
    "--trainer.enable_progress_bar=false",
    "--trainer.enable_model_summary=false",
    "--trainer.accelerator=cpu",
    "--trainer.limit_val_batches=0",
]


@pytest.mark.parametrize(
    ("precision", "computed_in"),
    [("bf16-mixed", "torch.bfloat16"), ("32-true", "torch.float32")],  # the second shows the probe can tell
)
def test_fit_precision_is_the_dtype_the_training_forward_pass_computes_in(
    precision: str, computed_in: str, tmp_path: Path
) -> None:
    from probes import RecordDtypes

    write_fake_mnist(tmp_path / "data", n_train=164, n_test=8)
    RecordDtypes.seen = set()
    args = ["fit", "--model", "lenet5", *data_args(tmp_path / "data"), f"--trainer.default_root_dir={tmp_path}"]
    args += ["--trainer.max_steps=2", f"--trainer.precision={precision}", "--trainer.callbacks+=probes.RecordDtypes"]
    assert main([*args, *QUIET]) == 0
    # mixed precision: the Linear layers compute in bf16 (autocast) from float32 master weights
    assert RecordDtypes.seen == {f"output:{computed_in}", "weight:torch.float32"}
