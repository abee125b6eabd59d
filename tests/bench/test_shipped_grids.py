"""Grids ship with the package: found by name from a wheel installed outside the clone."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from cnnbench.bench.grid import GridError, GridSpec, expand, find_grid, shipped_grids
from cnnbench.cli.bench import run as bench_main

REPO = Path(__file__).resolve().parents[2]
GRIDS = REPO / "cnnbench" / "grids"


def test_every_grid_file_is_shipped_and_found_by_name() -> None:
    files = sorted(p.stem for p in GRIDS.glob("*.yaml") if not p.name.endswith(".questions.yaml"))
    assert {"smoke", "mnist", "mnist-lenet5", "cifar10", "cifar10-gpu", "cifar10-cpu", "lenet5-gpu-12"} <= set(files)
    assert sorted(shipped_grids()) == files
    for stem in files:
        assert find_grid(stem).resolve() == (GRIDS / f"{stem}.yaml").resolve()
        assert expand(GridSpec.load(find_grid(stem)))
    assert not list(REPO.glob("benchmarks/grids/*.yaml"))  # one copy only


def test_a_path_is_read_as_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    own = tmp_path / "smoke.yaml"  # same stem as a shipped grid: the file wins
    own.write_text("name: mine\ndata: mnist\nmodels: [lenet5]\npool: [avg]\npadding: [same]\n")
    monkeypatch.chdir(tmp_path)
    assert find_grid("smoke.yaml") == Path("smoke.yaml") and GridSpec.load(find_grid("smoke.yaml")).name == "mine"
    assert find_grid(own) == own
    # the README's old path, outside a clone: the shipped grid of that name
    assert find_grid("benchmarks/grids/mnist.yaml") == shipped_grids()["mnist"]
    with pytest.raises(GridError, match="smok: no such grid file, and not a shipped grid; did you mean smoke"):
        find_grid("smok")
    with pytest.raises(GridError, match="no such grid file"):
        find_grid("elsewhere/smoke.yaml")  # a path to a missing file is not silently replaced


def test_list_names_each_grid_with_its_description(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench_main(["--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = {line.split()[0]: line for line in lines[1:]}
    assert sorted(rows) == sorted(p.stem for p in GRIDS.glob("*.yaml") if not p.name.endswith(".questions.yaml"))
    for stem, line in rows.items():
        raw = yaml.safe_load((GRIDS / f"{stem}.yaml").read_text())
        assert raw.get("description"), f"{stem}.yaml has no description"
        assert line.split()[1] == str(len(expand(GridSpec.load(GRIDS / f"{stem}.yaml"))))
        assert line.endswith(raw["description"])


def _installed_copy(tmp_path: Path) -> Path:
    """Build a wheel from a copy of the project (the clone stays clean) and pip-install it into a folder."""
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(REPO / "pyproject.toml", src)
    shutil.copy(REPO / "README.md", src)
    shutil.copytree(REPO / "cnnbench", src / "cnnbench", ignore=shutil.ignore_patterns("__pycache__"))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "-q", ".", "-w", str(tmp_path / "wheel")],
        cwd=src,
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = (tmp_path / "wheel").glob("cnnbench-*.whl")
    site = tmp_path / "site"
    subprocess.run(
        [*pip, "install", "--no-deps", "--no-index", "-q", "--target", str(site), str(wheel)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    shutil.rmtree(src)
    return site


def test_shipped_grids_work_from_a_wheel_outside_the_clone(tmp_path: Path) -> None:
    pytest.importorskip("setuptools")
    site = _installed_copy(tmp_path)
    assert sorted(p.name for p in (site / "cnnbench" / "grids").glob("*.yaml")) == sorted(
        p.name for p in GRIDS.glob("*.yaml")
    )
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site), "PYTHONUNBUFFERED": "1"}

    def cnnbench(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "cnnbench", *args], cwd=work, env=env, capture_output=True, text=True, timeout=300
        )

    where = subprocess.run(
        [sys.executable, "-c", "import cnnbench; print(cnnbench.__file__)"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert where.stdout.strip().startswith(str(site))  # the installed copy, not the clone
    listed = cnnbench("bench", "--list")
    assert listed.returncode == 0, listed.stderr[-2000:]
    assert "smoke" in listed.stdout and "quick end-to-end check" in listed.stdout
    dry = cnnbench("bench", "smoke", "--dry-run")
    assert dry.returncode == 0, dry.stderr[-2000:]
    assert dry.stdout.split() == [
        f"lenet5-{p}-{d}-zeros-32-true-d1-s0" for p in ("max", "avg") for d in ("valid", "same")
    ]
    old = cnnbench("bench", "benchmarks/grids/smoke.yaml", "--dry-run")  # the old README command
    assert old.returncode == 0 and old.stdout == dry.stdout, old.stderr[-2000:]
