"""Issue 12 item 5: every error for a bad value is at most three lines, no traceback,
usage or Namespace dump; abbreviated options are refused; --traceback shows the rest."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli.test_cli import FAST, run_cli
from fakes import data_args

from cnnbench.cli import main
from cnnbench.cli.errors import format_parse_error

NOISE = ("Traceback", "Namespace(", "usage:", "Does not validate", "Given value", "Subtypes")


def error_lines(err: str) -> list[str]:
    return [ln for ln in err.strip().splitlines() if ln.strip() and not ln.startswith("Seed set")]


def assert_short(err: str, *expected: str) -> None:
    lines = error_lines(err)
    assert 1 <= len(lines) <= 3, err
    assert lines[0].startswith("cnnbench "), err
    assert not any(n in err for n in NOISE), err
    for text in expected:
        assert text in err, err


def test_bad_pool_on_the_command_line_is_one_line_and_traceback_on_request(mnist_root: Path, workdir: Path) -> None:
    args = ["fit", "--model", "lenet5", "--model.pool", "median", *data_args(mnist_root), *FAST]
    proc = run_cli(*args)
    assert proc.returncode == 2
    assert_short(proc.stderr, "'median'", "max, avg, min, lp, blur, conv, subsample")
    assert not (workdir / "runs").exists()
    shown = run_cli(*args, "--traceback")
    assert shown.returncode != 0 and "Traceback" in shown.stderr and "median" in shown.stderr


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--data.batch_size", "-1"], ["batch_size", "-1"]),
        (["--data.batch_sise", "64"], ["--data.batch_sise", "Did you mean --data.batch_size"]),
        (["--model.lrr", "0.1"], ["--model.lrr", "Did you mean --model.lr"]),
        (["--trainer.max_epoch", "1"], ["--trainer.max_epoch", "not abbreviated", "--trainer.max_epochs"]),
        (["--trainer.max_epochs", "x"], ["--trainer.max_epochs", "expected int", "'x'"]),
        (["--train_step", "fast"], ["'fast'", "auto, graph, eager"]),
        (["--trainer.logger", "false"], ["--trainer.logger false"]),
    ],
)
def test_bad_fit_values_are_at_most_three_lines(
    flags: list[str], expected: list[str], mnist_root: Path, workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["fit", "--model", "lenet5", *data_args(mnist_root), *flags, "--trainer.max_steps=1", *FAST])
    assert code == 2
    assert_short(capsys.readouterr().err, *expected)
    assert not list(workdir.rglob("*.ckpt"))
    assert not (workdir / "runs").exists()  # item 11: no empty run folder either


def test_summary_and_predict_errors(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["summary", "--model", "lenet5", "--model.pol", "avg"]) == 2
    assert_short(capsys.readouterr().err, "--model.pol", "Did you mean --model.pool")
    assert main(["summary", "--model", "lenet5", "--data", "mnist", "--data.image_sise", "32"]) == 2
    assert_short(capsys.readouterr().err, "--data.image_sise", "--data.image_size")
    (workdir / "notes.txt").write_text("not a checkpoint\n")
    assert main(["predict", "--ckpt_path", "notes.txt", "x.png"]) == 2
    assert_short(capsys.readouterr().err, "notes.txt is not a checkpoint")
    assert main(["test", "--ckpt_path", "notes.txt"]) == 2
    assert_short(capsys.readouterr().err, "notes.txt is not a checkpoint")


def test_union_report_of_jsonargparse_is_reduced_to_its_message() -> None:
    # jsonargparse 4.x's message for `--trainer.max_epochs x`, verbatim
    message = (
        'Parser key "trainer.max_epochs":\n  Does not validate against any of the Union subtypes\n'
        "  Subtypes: [<class 'int'>, <class 'NoneType'>]\n  Errors:\n    - Expected a <class 'int'>\n"
        "    - Expected a <class 'NoneType'>\n  Given value type: <class 'str'>\n  Given value: x"
    )
    assert format_parse_error(message) == "--trainer.max_epochs: expected int, got 'x'"
