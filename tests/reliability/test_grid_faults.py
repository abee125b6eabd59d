"""Faults 5, 6, 10 and 13 in a grid: a failing DDP cell, SIGKILL, divergence, concurrent shards."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from fakes import write_plugin_dist
from helpers import child_env

from cnnbench.bench.grid import GridSpec, expand
from cnnbench.bench.runner import load_results, run_grid
from cnnbench.models import MODELS


def grid(root: Path, **changes: Any) -> dict[str, Any]:
    spec = {
        "name": "faults",
        "data": {"name": "mnist", "root": str(root), "download": False, "verify": False, "val_size": 100, "batch_size": 64},
        "models": ["lenet5"], "pool": ["max"], "padding": ["same"], "seeds": [0],
        "trainer": {"max_steps": 3, "limit_val_batches": 1, "num_sanity_val_steps": 0},
        "robustness": {"shifts": [1], "max_images": 32},
    }  # fmt: skip
    spec.update(changes)
    return spec


def bench(
    tmp_path: Path, spec: dict[str, Any], out: Path, *extra: str, env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    path = tmp_path / f"grid-{len(list(tmp_path.glob('grid-*')))}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return subprocess.Popen(
        [sys.executable, "-m", "cnnbench", "bench", str(path), "--out", str(out), "--no-wandb", "--no-report", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True, env=child_env(tmp_path, **(env or {})),
    )  # fmt: skip


def test_sigkill_mid_grid_then_rerun_loses_and_repeats_nothing(data_root: Path, tmp_path: Path) -> None:
    spec = grid(data_root, pool=["max", "avg", "min"])
    out = tmp_path / "out"
    proc = bench(tmp_path, spec, out)
    results = out / "results"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and not list(results.glob("*.json")):
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)  # the runner and the run it was in the middle of
    proc.wait()
    finished = {p.name: p.stat().st_mtime_ns for p in results.glob("*.json")}
    assert 1 <= len(finished) < 3
    for p in results.glob("*.json"):
        json.loads(p.read_text())  # every visible result is complete
    (results / ".lenet5-min-same-zeros-32-true-d1-s0.json.123.tmp").write_text(
        '{"status": "ok"'
    )  # half-written at the kill
    rerun = bench(tmp_path, spec, out)
    assert rerun.wait(timeout=300) == 0, rerun.stdout.read() if rerun.stdout else ""
    after = {p.name: p.stat().st_mtime_ns for p in results.glob("*.json")}
    assert len(after) == 3 and all(after[name] == mtime for name, mtime in finished.items())  # none recomputed
    assert sorted(r["run_id"] for r in load_results(out)) == sorted(c.run_id for c in expand(GridSpec.from_dict(spec)))


def test_concurrent_shards_write_exactly_the_grid(data_root: Path, tmp_path: Path) -> None:
    spec = grid(data_root, pool=["max", "avg"], padding=["same", "valid"])
    out = tmp_path / "out"
    shards = [bench(tmp_path, spec, out, "--shard", f"{i}/2") for i in range(2)]
    for proc in shards:
        assert proc.wait(timeout=400) == 0, proc.stdout.read() if proc.stdout else ""
    ids = [r["run_id"] for r in load_results(out)]
    assert sorted(ids) == sorted(c.run_id for c in expand(GridSpec.from_dict(spec))) and len(ids) == len(set(ids))
    assert not list((out / "results").glob(".*.tmp")) and not list((out / "locks").iterdir())


def test_divergence_is_recorded_and_the_grid_goes_on(data_root: Path, tmp_path: Path) -> None:
    spec = GridSpec.from_dict(
        grid(data_root, models=[{"name": "lenet5", "args": {"lr": 1.0e8, "scheduler": "none"}}, "lenet5"])
    )
    outcome = run_grid(spec, tmp_path / "out", wandb=False)
    statuses = {r["model_label"]: r for r in load_results(tmp_path / "out")}
    diverged = next(r for label, r in statuses.items() if label != "lenet5")
    assert (diverged["status"] == "diverged" and "became nan" in diverged["error"].lower()) or "became inf" in diverged[
        "error"
    ].lower()
    assert statuses["lenet5"]["status"] == "ok" and outcome.failed == []


@pytest.fixture
def failing_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A third-party model (entry point) whose rank 1 raises: the grid's own processes find it too."""
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "flaky_models.py").write_text(
        textwrap.dedent("""
        from helpers import FailOnRank as FlakyNet
    """)
    )
    write_plugin_dist(plugins, "flaky_models", "flaky_net = flaky_models:FlakyNet")
    monkeypatch.syspath_prepend(str(plugins))
    monkeypatch.setattr(MODELS, "_plugins_loaded", False)
    yield plugins
    MODELS._entries.pop("flaky_net", None)
    sys.modules.pop("flaky_models", None)


def test_a_failing_rank_marks_its_ddp_cell_failed_and_the_grid_goes_on(
    data_root: Path, tmp_path: Path, failing_plugin: Path
) -> None:
    spec = grid(
        data_root,
        models=["flaky_net", "lenet5"],
        devices=[2],
        trainer={
            "max_steps": 4,
            "limit_val_batches": 1,
            "num_sanity_val_steps": 0,
            "accelerator": "cpu",
            "strategy": "ddp",
        },
    )
    out = tmp_path / "out"
    proc = bench(
        tmp_path,
        spec,
        out,
        env={
            "PYTHONPATH": f"{failing_plugin}{os.pathsep}{child_env(tmp_path)['PYTHONPATH']}",
            "CNNBENCH_FAIL_RANK": "1",
        },
    )
    output = proc.communicate(timeout=500)[0]
    assert proc.returncode == 1, output[-3000:]  # non-zero: a run failed
    results = {r["model_label"]: r for r in load_results(out)}
    assert results["flaky_net"]["status"] == "failed" and any(
        "injected failure on rank 1" in line for line in results["flaky_net"]["error_lines"]
    )
    assert results["lenet5"]["status"] == "ok"  # one result row for the 2-process cell
    assert len(load_results(out)) == 2
