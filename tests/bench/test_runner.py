"""The grid runner end to end on tiny offline data (each run is a real child process)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from cnnbench.bench.grid import GridSpec, expand
from cnnbench.bench.report import write_report
from cnnbench.bench.runner import acquire_lock, load_results, run_grid


def tiny_grid(root: Path, **changes: Any) -> dict[str, Any]:
    grid = {
        "name": "tiny",
        "data": {"name": "mnist", "root": str(root), "download": False, "verify": False, "val_size": 100, "batch_size": 64},
        "models": ["lenet5"], "pool": ["max", "avg"], "padding": ["same"], "seeds": [0],
        "trainer": {"max_steps": 3, "limit_val_batches": 1, "num_sanity_val_steps": 0},
        "robustness": {"shifts": [1, 2], "max_images": 64},
    }  # fmt: skip
    grid.update(changes)
    return grid


@pytest.fixture
def fake_root(tmp_path: Path) -> Path:
    from fakes import write_fake_mnist

    write_fake_mnist(tmp_path / "data", n_train=400, n_test=100)
    return tmp_path / "data"


def test_smoke_grid_end_to_end_with_infeasible_and_failed_cells(fake_root: Path, tmp_path: Path) -> None:
    grid = tiny_grid(fake_root, models=["lenet5", {"name": "lenet5", "args": {"dropout": 0.5}}, "alexnet"])
    spec = GridSpec.from_dict(grid)
    out = tmp_path / "out"
    outcome = run_grid(spec, out, wandb=False)
    statuses = {r["run_id"]: r["status"] for r in load_results(out)}
    assert len(statuses) == len(expand(spec)) == 6
    assert [s for k, s in statuses.items() if k.startswith("lenet5-")] == ["ok", "ok"]
    assert {s for k, s in statuses.items() if k.startswith("lenet5~")} == {"failed"}  # unknown argument: run raised
    assert {s for k, s in statuses.items() if k.startswith("alexnet")} == {"infeasible"}  # 32×32 shrinks below a kernel
    assert len(outcome.failed) == 2
    ok = next(r for r in load_results(out) if r["status"] == "ok")
    from cnnbench.models import create_model

    expected_params = sum(p.numel() for p in create_model("lenet5", padding="same").parameters())
    assert 0 <= ok["test_acc"] <= 1 and ok["params"] == expected_params and ok["images_per_s"] > 0
    assert set(ok["robustness"]["shift_consistency"]) == {"1", "2"} and ok["environment"]["torch"]
    failed = next(r for r in load_results(out) if r["status"] == "failed")
    assert "dropout" in failed["traceback"]
    paths = write_report(out)
    report = paths["report"].read_text()
    assert "## Summary" in report and "infeasible" in report and "failed" in report
    assert paths["accuracy"].stat().st_size > 1000 and paths["shift"].is_file() and paths["throughput"].is_file()
    # rerun: nothing is done twice, failed runs only with retry_failed
    again = run_grid(spec, out, wandb=False)
    assert again.ran == [] and len(again.skipped) == 6  # ok, failed and infeasible results are all kept
    retried = run_grid(spec, out, wandb=False, retry_failed=True)
    assert sorted(retried.ran) == sorted(k for k, s in statuses.items() if s == "failed")


def test_lock_files_keep_two_runners_apart(tmp_path: Path) -> None:
    lock = tmp_path / "x.lock"
    assert acquire_lock(lock)
    assert not acquire_lock(lock)  # held by a live process (us)
    lock.write_text("999999999")  # a dead owner
    assert acquire_lock(lock)


def test_cli_bench_dry_run_shard_and_sweep(fake_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from cnnbench.cli import main

    path = tmp_path / "g.yaml"
    path.write_text(yaml.safe_dump(tiny_grid(fake_root, seeds=[0, 1, 2])))
    assert main(["bench", str(path), "--dry-run", "--shard", "1/2"]) == 0
    lines = capsys.readouterr().out.split()
    assert lines == [c.run_id for c in expand(GridSpec.load(path))][1::2]
    assert main(["bench", str(path), "--out", str(tmp_path / "o"), "--emit-wandb-sweep"]) == 0
    sweep = yaml.safe_load((tmp_path / "o" / "sweep.yaml").read_text())
    assert sweep["method"] == "grid" and sweep["parameters"]["pool"]["values"] == ["max", "avg"]
    assert "${args}" in sweep["command"]
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: g\ndata: mnist\nmodels: [lenet5]\npool: [max]\npadding: [valid]\nepochs: 3\n")
    assert main(["bench", str(bad)]) == 2
    assert "bad.yaml: epochs: unknown key" in capsys.readouterr().err
