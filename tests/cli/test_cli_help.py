"""Issue 12 item 9: fast starts (no torch/Lightning import for help and the models
table), the model's own options at the top of ``fit --model M --help``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from cli.test_cli import run_cli

PROBE = (
    "import sys; from cnnbench.cli import main\n"
    "try:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
    "print('HEAVY', sorted(m for m in ('torch', 'lightning', 'wandb') if m in sys.modules))"
)


def heavy_imports(*args: str, env: dict[str, str] | None = None) -> tuple[str, str]:
    proc = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, timeout=240, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout.rsplit("HEAVY", 1)[1].strip(), proc.stdout


@pytest.mark.parametrize("args", [["--help"], ["predict", "--help"], ["summary", "--help"], ["models", "--help"]])
def test_help_imports_neither_torch_nor_lightning(args: list[str]) -> None:
    heavy, out = heavy_imports(*args)
    assert heavy == "[]" and "usage" in out


def test_models_table_is_cached_and_then_starts_without_torch(tmp_path: Path) -> None:
    import os

    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path)}
    heavy, first = heavy_imports("models", env=env)
    assert "'torch'" in heavy  # the first call builds the table
    heavy, second = heavy_imports("models", env=env)
    assert heavy == "[]" and second == first.replace(first.rsplit("HEAVY", 1)[1], second.rsplit("HEAVY", 1)[1])
    assert "lenet5_classic" in second and "61,100,840" in second and "60,000" in second
    heavy, only = heavy_imports("models", "lenet*", env=env)
    assert heavy == "[]" and "lenet5" in only and "alexnet" not in only


def test_fit_help_starts_with_the_models_options_and_choices(workdir: Path) -> None:
    proc = run_cli("fit", "--model", "lenet5", "--help")
    assert proc.returncode == 0, proc.stderr[-2000:]
    top = "\n".join(proc.stdout.splitlines()[:40])
    from cnnbench.core.vocab import POOL_KINDS  # the one list of pool kinds

    assert "--model.pool {" + ",".join(POOL_KINDS) + "}" in top and "decimate" in POOL_KINDS
    assert "--model.padding {valid,same,full" in top and "--model.lr" in top and "Peak learning rate" in top
    assert "--model.scheduler {onecycle,cosine,none}" in top
    shown = run_cli("fit", "--model.help", "lenet5")  # a registry name, like --model
    assert shown.returncode == 0 and "--model.pool" in shown.stdout, shown.stderr[-2000:]
