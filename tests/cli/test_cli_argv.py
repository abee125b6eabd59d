"""The prepared command line (issue 19): every default (recipe, checkpoint, saved run) sits in one
place before the user's flags, and the user's flags win wherever they are typed.

The expected values are the fixture checkpoint's documented training flags and the models'
published recipes, read back from LightningCLI's own ``--print_config``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from cnnbench.cli import main
from cnnbench.cli.argv import prepare_invocation

#: trained with --model.pool avg --model.padding same --data synthetic --data.train_images 64 (its docstring)
FIXTURE = Path(__file__).parents[1] / "fixtures" / "lenet5-avg-same-v0.1.0.ckpt"


def printed_config(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    capsys.readouterr()
    with pytest.raises(SystemExit) as stop:
        main(["fit", *args, "--print_config"])
    assert stop.value.code in (0, None), capsys.readouterr().err[-2000:]
    return dict(yaml.safe_load(capsys.readouterr().out))


def test_checkpoint_settings_are_defaults_and_the_users_flags_win(
    capsys: pytest.CaptureFixture[str], workdir: Path
) -> None:
    cfg = printed_config(capsys, "--model", "lenet5", "--ckpt_path", str(FIXTURE), "--model.lr", "0.05")
    model, data = cfg["model"]["init_args"], cfg["data"]
    assert model["pool"] == "avg" and model["padding"] == "same"  # kept although --model lenet5 comes later
    assert model["lr"] == 0.05  # the user's flag over the checkpoint's value
    assert data["class_path"] == "cnnbench.data.synthetic.SyntheticDataModule"
    assert data["init_args"]["train_images"] == 64
    cfg = printed_config(capsys, "--model.lr", "0.05", "--ckpt_path", str(FIXTURE), "--model.pool", "max")
    assert cfg["model"]["init_args"]["lr"] == 0.05 and cfg["model"]["init_args"]["pool"] == "max"
    assert cfg["model"]["init_args"]["padding"] == "same"


def test_recipe_data_settings_are_defaults_and_the_users_flags_win(
    capsys: pytest.CaptureFixture[str], workdir: Path
) -> None:
    # AlexNet (227×227 in the paper) resizes CIFAR-10 on the device: its recipe's image_size
    assert printed_config(capsys, "--model", "alexnet")["data"]["init_args"]["image_size"] == 224
    for args in (
        ["--model", "alexnet", "--data.image_size", "160"],
        ["--data.image_size", "160", "--model", "alexnet"],
    ):
        assert printed_config(capsys, *args)["data"]["init_args"]["image_size"] == 160, args
    given = printed_config(capsys, "--model", "alexnet", "--data", "cifar10", "--data.batch_size", "8")
    assert given["data"]["init_args"]["image_size"] == 224 and given["data"]["init_args"]["batch_size"] == 8


def test_the_invocation_names_what_was_resolved_and_defaults_come_first(workdir: Path) -> None:
    inv = prepare_invocation(["test", "--ckpt_path", str(FIXTURE), "--trainer.max_steps", "1"])
    assert (inv.subcommand, inv.model_name, inv.data_name) == ("test", "lenet5", "synthetic")
    assert inv.ckpt == str(FIXTURE) and inv.resume_dir == FIXTURE.resolve().parent.parent
    assert inv.saved_schedulers is not None and len(inv.saved_schedulers) == 1  # the fixture's one-cycle
    user = ["--ckpt_path", str(FIXTURE), "--trainer.max_steps", "1"]
    assert list(inv.argv[-len(user) :]) == user  # the user's flags last, unchanged
    front = inv.argv[1 : -len(user)]
    assert front[::2] == ("--config",) * (len(front) // 2)  # defaults: --config dicts only
    with pytest.raises(AttributeError):
        inv.ckpt = "other.ckpt"  # type: ignore[misc]
