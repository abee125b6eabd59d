"""Version checks: an older Lightning or torch than the tested floor fails in one line naming
the version needed, before any training; the floors agree with pyproject and .ci/oldest."""

from __future__ import annotations

import re
from pathlib import Path

import lightning
import pytest
import torch
from cli.test_cli import FAST
from cli.test_cli_errors import assert_short
from fakes import data_args

from cnnbench.cli import main
from cnnbench.core.compat import MINIMUM, UnsupportedVersionError, version_tuple
from cnnbench.training import trainer_extras
from cnnbench.training.captured_step import CapturedStep

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("text", "expected"),
    [("2.9.1+cpu", (2, 9, 1)), ("2.10.0a0+git1234", (2, 10, 0)), ("2.6", (2, 6, 0)), ("2.6.0rc1", (2, 6, 0))],
)
def test_version_tuple_reads_the_release_numbers(text: str, expected: tuple[int, ...]) -> None:
    assert version_tuple(text) == expected


def test_versions_compare_as_numbers_not_strings() -> None:
    assert version_tuple("2.10.0") > version_tuple("2.9")  # "2.10.0" < "2.9" as strings
    assert version_tuple("2.9.0") == version_tuple("2.9")


def test_old_lightning_fails_in_one_line_before_training(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lightning, "__version__", "2.5.1")
    with pytest.raises(UnsupportedVersionError) as info:
        trainer_extras(str(tmp_path), "lenet5")
    message = str(info.value)
    assert "\n" not in message
    assert f"lightning>={MINIMUM['lightning']}" in message and "2.5.1" in message and "resume" in message


@pytest.mark.parametrize("version", [MINIMUM["lightning"], f"{MINIMUM['lightning']}.0rc1", "2.10.0"])
def test_tested_lightning_versions_pass(version: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lightning, "__version__", version)
    assert trainer_extras(str(tmp_path), "lenet5", progress_bar=False)["callbacks"]


def test_old_torch_fails_in_one_line_naming_the_captured_step(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch, "__version__", "2.8.0+cpu")
    with pytest.raises(UnsupportedVersionError, match=r"captured training step.*torch>=2\.9\.1.*2\.8\.0\+cpu"):
        CapturedStep("auto")
    monkeypatch.setattr(torch, "__version__", "2.9.1+cpu")
    assert CapturedStep("auto").mode == "auto"


def test_the_cli_prints_the_version_error_in_one_line(
    mnist_root: Path, workdir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(lightning, "__version__", "2.4.0")
    assert main(["fit", "--model", "lenet5", *data_args(mnist_root), "--trainer.max_steps=1", *FAST]) == 2
    assert_short(capsys.readouterr().err, "lightning>=2.6", "2.4.0")
    assert not list(workdir.rglob("*.ckpt"))


def _floors() -> dict[str, str]:
    """``name: floor`` of each ``name>=floor`` dependency in pyproject.toml."""
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    floors = {}
    for requirement in project["dependencies"]:
        match = re.match(r"([A-Za-z0-9_.-]+)(?:\[[^]]*\])?\s*>=\s*([0-9.]+)", requirement)
        assert match, f"{requirement!r} declares no floor"
        floors[match.group(1).lower()] = match.group(2)
    return floors


def test_declared_floors_are_the_tested_oldest_set() -> None:
    pins = {}
    for line in (ROOT / ".ci" / "oldest-constraints.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, version = line.split("==")
            pins[name.strip().lower()] = version.strip()
    floors = _floors()
    for name, floor in floors.items():
        assert name in pins, f"{name} has no pin in .ci/oldest-constraints.txt"
        assert version_tuple(pins[name]) == version_tuple(floor), f"{name}: floor {floor}, tested {pins[name]}"
    for name, minimum in MINIMUM.items():
        assert version_tuple(floors[name]) == version_tuple(minimum), f"{name}: floor {floors[name]}, checked {minimum}"
