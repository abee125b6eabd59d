"""Faults in a grid: crashing cells, SIGKILL of the runner, timeouts, divergence, double starts,
concurrent shards and a failing DDP rank."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from fakes import write_plugin_dist
from helpers import alive, child_env, descendants, forkserver_processes

from cnnbench.bench.grid import GridSpec, expand
from cnnbench.bench.runner import cpu_share, load_results, run_grid
from cnnbench.models import MODELS


def grid(root: Path, **changes: Any) -> dict[str, Any]:
    spec = {
        "name": "faults",
        "data": {
            "name": "mnist",
            "root": str(root),
            "download": False,
            "verify": False,
            "val_size": 100,
            "batch_size": 64,
        },
        "models": ["lenet5"],
        "pool": ["max"],
        "padding": ["same"],
        "seeds": [0],
        "trainer": {"max_steps": 3, "limit_val_batches": 1, "num_sanity_val_steps": 0},
        "robustness": {"shifts": [1], "max_images": 32},
    }
    spec.update(changes)
    return spec


def crash(kind: str) -> dict[str, Any]:
    return {"name": "crash_net", "args": {"crash": kind}}


@pytest.fixture
def plugins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Third-party models (entry points) that fail on purpose; the grid's own processes
    (fork server, cells, CLI runners) find them through $PYTHONPATH."""
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "fault_models.py").write_text("from helpers import CrashNet, FailOnRank as FlakyNet\n")
    write_plugin_dist(folder, "fault_models", "flaky_net = fault_models:FlakyNet\ncrash_net = fault_models:CrashNet")
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.setattr(MODELS, "_plugins_loaded", False)
    monkeypatch.setenv("PYTHONPATH", f"{folder}{os.pathsep}{child_env(tmp_path)['PYTHONPATH']}")
    monkeypatch.setenv("CNNBENCH_NETGUARD_LOG", str(tmp_path / "network.log"))
    yield folder
    for name in ("flaky_net", "crash_net"):
        MODELS._entries.pop(name, None)
    sys.modules.pop("fault_models", None)


def bench(
    tmp_path: Path, spec: dict[str, Any], out: Path, *extra: str, env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    path = tmp_path / f"grid-{len(list(tmp_path.glob('grid-*')))}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return subprocess.Popen(
        [sys.executable, "-m", "cnnbench", "bench", str(path), "--out", str(out), "--no-wandb", "--no-report", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        env=child_env(tmp_path, **(env or {})),
    )


def test_crashing_cells_fail_alone_with_their_errors_while_the_rest_run(
    data_root: Path, tmp_path: Path, plugins: Path
) -> None:
    spec = GridSpec.from_dict(grid(data_root, models=[crash("raise"), crash("segfault"), crash("exit"), "lenet5"]))
    out = tmp_path / "out"
    outcome = run_grid(spec, out, workers=2, wandb=False, log=io.StringIO())
    results = {r["model_label"]: r for r in load_results(out)}
    by_kind = {r["model_args"].get("crash", "lenet5"): r for r in results.values()}
    assert {k: r["status"] for k, r in by_kind.items()} == {
        "raise": "failed",
        "segfault": "failed",
        "exit": "failed",
        "lenet5": "ok",
    }
    assert sorted(outcome.failed) == sorted(r["run_id"] for r in results.values() if r["status"] == "failed")
    assert "RuntimeError: injected failure in a cell" in by_kind["raise"]["error_lines"]
    assert by_kind["segfault"]["error"] == "run process ended (SIGSEGV) without a result"
    assert any("Segmentation fault" in line for line in by_kind["segfault"]["error_lines"])  # faulthandler's stack
    assert by_kind["exit"]["error"] == "run process ended (exit code 3) without a result"
    assert all(r["log_tail"] for k, r in by_kind.items() if k != "lenet5")
    assert by_kind["lenet5"]["launcher"] == "fork" and by_kind["lenet5"]["threads"] == cpu_share(2)
    assert not forkserver_processes()  # the server and every cell are gone


def test_a_cell_past_its_timeout_is_killed_and_failed(data_root: Path, tmp_path: Path, plugins: Path) -> None:
    spec = GridSpec.from_dict(grid(data_root, models=[crash("hang")]))
    started = time.monotonic()
    outcome = run_grid(spec, tmp_path / "out", wandb=False, timeout=4, log=io.StringIO())
    (result,) = load_results(tmp_path / "out")
    assert result["status"] == "failed" and outcome.failed == [result["run_id"]]
    assert result["error"] == "run process ended (timeout after 4s) without a result"
    assert result["t_exit"] - result["t_launch"] < 4 + 5  # killed at the timeout, not at the end of the hang
    assert time.monotonic() - started < 120 and not forkserver_processes()


def test_sigkill_of_the_runner_leaves_no_process_and_a_rerun_resumes(
    data_root: Path, tmp_path: Path, plugins: Path
) -> None:
    spec = grid(data_root, models=[crash("none"), crash("hold")])  # the 2nd cell waits while `hold` exists
    out, hold = tmp_path / "out", tmp_path / "hold"
    hold.touch()
    proc = bench(tmp_path, spec, out, env={"CNNBENCH_HOLD_FILE": str(hold)})
    results, held_log = out / "results", out / "logs" / f"{expand(GridSpec.from_dict(spec))[1].run_id}.log"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and not (list(results.glob("*.json")) and held_log.exists()):
        time.sleep(0.1)
    time.sleep(1.0)  # the first cell's process has ended, the held one is past its start
    below = descendants(proc.pid)  # the fork server and the held cell
    assert len(below) == 2, proc.stdout.read() if proc.stdout else ""
    os.kill(proc.pid, signal.SIGKILL)  # the runner only: the rest must follow by itself
    proc.wait()
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline and any(alive(pid) for pid in below):
        time.sleep(0.05)
    orphans = [pid for pid in below if alive(pid)]
    hold.unlink()  # a held orphan would now finish by itself; it must not be there at all
    for pid in orphans:
        os.kill(pid, signal.SIGKILL)
    assert not orphans  # the server and the held cell died with the runner
    finished = {p.name: p.stat().st_mtime_ns for p in results.glob("*.json")}
    (held,) = {f"{c.run_id}.json" for c in expand(GridSpec.from_dict(spec))} - set(finished)
    done = json.loads((results / next(iter(finished))).read_text())  # the visible result is complete
    assert done["status"] == "ok" and done["model_args"] == {"crash": "none"}
    (results / f".{held}.123.tmp").write_text('{"status": "ok"')  # half-written at the kill
    (results / held).write_text('{"status": "ok", "test_acc": 0.9')  # a damaged result
    assert len(load_results(out)) == 1  # neither counts as a result
    rerun = bench(tmp_path, spec, out)
    assert rerun.wait(timeout=300) == 0, rerun.stdout.read() if rerun.stdout else ""
    after = {p.name: p.stat().st_mtime_ns for p in results.glob("*.json")}
    assert len(after) == 2 and all(after[name] == mtime for name, mtime in finished.items())  # none recomputed
    assert json.loads((results / held).read_text())["status"] == "ok"  # the damaged one was
    assert sorted(r["run_id"] for r in load_results(out)) == sorted(c.run_id for c in expand(GridSpec.from_dict(spec)))


def test_two_runners_started_at_once_run_each_cell_once(data_root: Path, tmp_path: Path, plugins: Path) -> None:
    spec = grid(data_root, models=[crash("none")], pool=["max", "avg"], seeds=[0, 1])
    out, count = tmp_path / "out", tmp_path / "executions.txt"
    runners = [bench(tmp_path, spec, out, env={"CNNBENCH_COUNT_FILE": str(count)}) for _ in range(2)]
    for proc in runners:
        assert proc.wait(timeout=400) == 0, proc.stdout.read() if proc.stdout else ""
    assert len(count.read_text().splitlines()) == 4  # one execution per cell, across both runners
    assert sorted(r["status"] for r in load_results(out)) == ["ok"] * 4
    assert not list((out / "locks").iterdir())


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
    outcome = run_grid(spec, tmp_path / "out", wandb=False, log=io.StringIO())
    statuses = {r["model_label"]: r for r in load_results(tmp_path / "out")}
    diverged = next(r for label, r in statuses.items() if label != "lenet5")
    error = diverged["error"].lower()
    assert diverged["status"] == "diverged" and ("became nan" in error or "became inf" in error)
    assert statuses["lenet5"]["status"] == "ok" and outcome.failed == []


def test_a_failing_rank_marks_its_ddp_cell_failed_and_the_grid_goes_on(
    data_root: Path, tmp_path: Path, plugins: Path
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
    proc = bench(tmp_path, spec, out, env={"PYTHONPATH": os.environ["PYTHONPATH"], "CNNBENCH_FAIL_RANK": "1"})
    output = proc.communicate(timeout=500)[0]
    assert proc.returncode == 1, output[-3000:]  # non-zero: a run failed
    results = {r["model_label"]: r for r in load_results(out)}
    assert results["flaky_net"]["status"] == "failed" and any(
        "injected failure on rank 1" in line for line in results["flaky_net"]["error_lines"]
    )
    assert results["lenet5"]["status"] == "ok"  # one result row for the 2-process cell
    assert results["lenet5"]["launcher"] == "subprocess"  # DDP re-executes the script: never forked
    assert len(load_results(out)) == 2
