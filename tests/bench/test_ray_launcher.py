"""``--launcher ray`` end to end on a local Ray instance (2 CPUs), shared by the module's tests.

The cells are real: fake MNIST files, LeNet-5 or the fault-injecting ``crash_net`` of
``tests/reliability/helpers.py`` (found by the Ray workers through ``$PYTHONPATH``, set
before Ray starts, as are ``$CNNBENCH_HOLD_FILE`` and ``$CNNBENCH_COUNT_FILE``).
"""

from __future__ import annotations

import csv
import io
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from cnnbench.bench.grid import GridError, GridSpec, expand
from cnnbench.bench.report import write_report
from cnnbench.bench.resources import cell_demand
from cnnbench.bench.runner import load_results, run_grid

TESTS = Path(__file__).resolve().parents[1]
SKIP = "the Ray launcher's tests need Ray: pip install 'cnnbench[ray]'"


def grid(root: Path, **changes: Any) -> dict[str, Any]:
    spec = {
        "name": "tiny",
        "data": {
            "name": "mnist",
            "root": str(root),
            "download": False,
            "verify": False,
            "val_size": 100,
            "batch_size": 64,
            "augment": "none",
        },
        "models": ["lenet5"],
        "pool": ["max", "avg"],
        "padding": ["same"],
        "seeds": [0],
        "trainer": {"max_steps": 3, "limit_val_batches": 1, "num_sanity_val_steps": 0},
        "robustness": {"shifts": [1], "max_images": 32},
    }
    spec.update(changes)
    return spec


def crash(kind: str) -> dict[str, Any]:
    return {"name": "crash_net", "args": {"crash": kind}}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """One local Ray instance for the module, its workers seeing the test plugins and files."""
    ray = pytest.importorskip("ray", reason=SKIP)
    from fakes import write_fake_mnist, write_plugin_dist

    from cnnbench.models import MODELS

    tmp = tmp_path_factory.mktemp("ray")
    plugins = tmp / "plugins"
    plugins.mkdir()
    (plugins / "fault_models.py").write_text("from helpers import CrashNet\n")
    write_plugin_dist(plugins, "fault_models", "crash_net = fault_models:CrashNet")
    write_fake_mnist(tmp / "data", n_train=400, n_test=100)
    paths = [plugins, TESTS / "reliability", TESTS / "netguard", TESTS]
    env = {
        "PYTHONPATH": os.pathsep.join([*map(str, paths), os.environ.get("PYTHONPATH", "")]),
        "CNNBENCH_HOLD_FILE": str(tmp / "hold"),
        "CNNBENCH_COUNT_FILE": str(tmp / "count"),
        "CNNBENCH_NETGUARD_LOG": str(tmp / "network.log"),
        "PYTHONUNBUFFERED": "1",
        "RAY_AUTH_MODE": "disabled",
        "RAY_USAGE_STATS_ENABLED": "0",
        "CNNBENCH_RAY_SCRATCH": str(tmp / "scratch" / "default"),
    }
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)  # before ray.init: its workers inherit this environment
        for path in (plugins, TESTS / "reliability"):
            mp.syspath_prepend(str(path))
        mp.setattr(MODELS, "_plugins_loaded", False)
        handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
        ray.init(num_cpus=2, include_dashboard=False, object_store_memory=80 * 2**20, log_to_driver=False)
        try:
            yield {"ray": ray, "tmp": tmp, "data": tmp / "data", "address": ray.get_runtime_context().gcs_address}
        finally:
            ray.shutdown()  # stops the Ray processes ray.init started
            for sig, handler in handlers.items():  # ray.init's SIGTERM handler would outlive it (sys.exit)
                signal.signal(sig, handler)
            MODELS._entries.pop("crash_net", None)
            sys.modules.pop("fault_models", None)
    probes = (tmp / "network.log").read_text().splitlines() if (tmp / "network.log").exists() else []
    # Ray's own dashboard asks the cloud metadata address once, unconditionally; the guard blocked it
    assert [p for p in probes if p != "('169.254.169.254', 80)"] == []


def forkservers() -> set[int]:
    """Fork servers and their cells below this process (Ray's workers are our descendants)."""
    from helpers import forkserver_processes

    return forkserver_processes()


def wait_for(predicate: Any, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def count_lines(cluster: dict[str, Any], prefix: str) -> int:
    path = cluster["tmp"] / "count"
    return sum(line.startswith(prefix) for line in path.read_text().splitlines()) if path.exists() else 0


def ray_options(cluster: dict[str, Any], name: str, **changes: Any) -> Any:
    from cnnbench.bench.ray_launcher import RayOptions

    return RayOptions(**{"scratch": str(cluster["tmp"] / "scratch" / name), "cpus_per_cell": 2, **changes})


def test_ray_gives_the_fork_launchers_results_and_writes_them_all_into_dir(
    cluster: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = GridSpec.from_dict(grid(cluster["data"]))
    run_grid(spec, tmp_path / "fork", wandb=False, log=io.StringIO())
    monkeypatch.chdir(tmp_path)  # DIR relative to the driver; the cells run elsewhere, in their scratch folder
    options = ray_options(cluster, "same")
    outcome = run_grid(spec, "by-ray", workers=1, wandb=False, keep_checkpoints=True, launcher="ray", ray=options)
    assert sorted(outcome.ran) == sorted(c.run_id for c in expand(spec))

    def table(out: Path) -> dict[str, tuple[str, str]]:
        write_report(out, plots=False)
        with (out / "results.csv").open() as fh:
            return {r["run_id"]: (r["status"], r["test_acc"]) for r in csv.DictReader(fh)}

    ray_dir = tmp_path / "by-ray"
    assert table(ray_dir) == table(tmp_path / "fork") and len(table(ray_dir)) == 2
    for result in load_results(ray_dir):
        assert result["status"] == "ok" and result["launcher"] == "ray" and result["attempts"] == 1
        node_out = Path(result["node_out"])  # where the cell ran: not DIR
        assert node_out.is_relative_to(cluster["tmp"] / "scratch" / "same") and not node_out.is_relative_to(ray_dir)
        run = f"runs/{result['run_id']}/version_0"
        assert (ray_dir / run / "metrics.csv").read_text() == (node_out / run / "metrics.csv").read_text()
        assert (ray_dir / "logs" / f"{result['run_id']}.log").read_text() == (
            node_out / "logs" / f"{result['run_id']}.log"
        ).read_text()
        assert list((node_out / run / "checkpoints").glob("*.ckpt"))  # checkpoints stay on the node
        assert not (ray_dir / run / "checkpoints").exists()
        marks = [result[k] for k in ("t_launch", "t_first_step", "t_train_end", "t_eval_end", "t_exit")]
        assert marks == sorted(marks)
    assert not [p for p in ray_dir.rglob(".*.tmp")] and not list((ray_dir / "locks").iterdir())
    assert not forkservers()  # the actors, their fork servers and cells are gone


def test_a_cell_that_raises_segfaults_or_hangs_fails_alone_with_its_error(
    cluster: dict[str, Any], tmp_path: Path
) -> None:
    models = [crash("raise"), crash("segfault"), crash("hang"), "lenet5"]
    spec = GridSpec.from_dict(grid(cluster["data"], models=models, pool=["max"]))
    options = ray_options(cluster, "faults")
    outcome = run_grid(spec, tmp_path / "out", workers=1, wandb=False, timeout=20, launcher="ray", ray=options)
    by_kind = {r["model_args"].get("crash", "lenet5"): r for r in load_results(tmp_path / "out")}
    assert {k: r["status"] for k, r in by_kind.items()} == {
        "raise": "failed",
        "segfault": "failed",
        "hang": "failed",
        "lenet5": "ok",
    }
    assert len(outcome.failed) == 3 and all(r["attempts"] == 1 for r in by_kind.values())  # none retried
    assert "RuntimeError: injected failure in a cell" in by_kind["raise"]["error_lines"]
    assert by_kind["segfault"]["error"] == "run process ended (SIGSEGV) without a result"
    assert any("Segmentation fault" in line for line in by_kind["segfault"]["error_lines"])
    assert by_kind["hang"]["error"] == "run process ended (timeout after 20s) without a result"
    assert by_kind["hang"]["t_exit"] - by_kind["hang"]["t_launch"] < 20 + 10


def kill_the_actor_once_the_cell_holds(cluster: dict[str, Any], killed: list[int]) -> None:
    """SIGKILL the Ray actor (its pid is the fork server's argument) while its cell waits on the hold file."""
    wait_for(lambda: count_lines(cluster, "hold") >= 1, 240, "the held cell")
    actors = set()
    for pid in forkservers():
        actors.add(int(Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[-2]))
    (actor,) = actors
    os.kill(actor, signal.SIGKILL)
    killed.append(actor)


@pytest.mark.parametrize("retries", [1, 0])
def test_a_killed_ray_worker_is_retried_and_its_cell_written_once(
    cluster: dict[str, Any], tmp_path: Path, retries: int
) -> None:
    hold, count = cluster["tmp"] / "hold", cluster["tmp"] / "count"
    hold.touch()
    count.unlink(missing_ok=True)
    spec = GridSpec.from_dict(grid(cluster["data"], models=[crash("hold")], pool=["max"]))
    killed: list[int] = []

    def killer() -> None:
        kill_the_actor_once_the_cell_holds(cluster, killed)
        hold.unlink()  # the retry runs through

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    out = tmp_path / "out"
    options = ray_options(cluster, f"kill{retries}", retries=retries)
    run_grid(spec, out, workers=1, wandb=False, launcher="ray", ray=options, log=io.StringIO())
    thread.join(timeout=5)
    assert len(killed) == 1
    (result,) = load_results(out)
    assert [p.name for p in (out / "results").iterdir()] == [f"{result['run_id']}.json"]  # once, no temp file
    if retries:
        assert result["status"] == "ok" and result["attempts"] == 2
        assert count_lines(cluster, "hold") == 2  # the killed attempt and the retry
        with (out / "runs" / result["run_id"] / "version_0" / "metrics.csv").open() as fh:
            steps = [r["step"] for r in csv.DictReader(fh) if r.get("train/loss")]
        assert len(steps) == len(set(steps))  # one attempt's metrics, not two runs' rows mixed
    else:
        assert result["status"] == "failed" and result["attempts"] == 1
        assert result["error"].startswith("Ray worker died in each of 1 attempt(s)")
        assert count_lines(cluster, "hold") == 1
    assert not forkservers()


def start_driver(cluster: dict[str, Any], tmp_path: Path, spec: dict[str, Any], out: Path) -> subprocess.Popen[str]:
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(spec))
    command = [
        sys.executable,
        "-m",
        "cnnbench",
        "bench",
        str(path),
        "--out",
        str(out),
        "--no-wandb",
        "--no-report",
        "--launcher",
        "ray",
        "--ray-address",
        cluster["address"],
        "--workers",
        "1",
        "--cpus-per-cell",
        "2",
    ]
    return subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )


def test_sigterm_and_sigkill_of_the_driver_stop_its_cells_and_a_rerun_recomputes_nothing(
    cluster: dict[str, Any], tmp_path: Path
) -> None:
    hold, count = cluster["tmp"] / "hold", cluster["tmp"] / "count"
    hold.touch()
    count.unlink(missing_ok=True)
    spec = grid(cluster["data"], models=[crash("none"), crash("hold")], pool=["avg"])
    out = tmp_path / "out"
    finished: dict[str, int] = {}
    for stop, holds in ((signal.SIGTERM, 1), (signal.SIGKILL, 2)):
        driver = start_driver(cluster, tmp_path, spec, out)
        wait_for(lambda: count_lines(cluster, "hold avg") == holds, 300, "the held cell")  # noqa: B023
        if not finished:
            finished = {p.name: p.stat().st_mtime_ns for p in (out / "results").glob("*.json")}
            assert len(finished) == 1
        os.kill(driver.pid, stop)
        output = driver.communicate(timeout=60)[0]
        assert driver.returncode == (-stop if stop == signal.SIGKILL else 143), (driver.returncode, output)
        wait_for(lambda: not forkservers(), 30, "the actors' fork servers and cells to end")
        assert {p.name: p.stat().st_mtime_ns for p in (out / "results").glob("*.json")} == finished
    hold.unlink()
    driver = start_driver(cluster, tmp_path, spec, out)
    assert driver.wait(timeout=300) == 0, driver.communicate()[0]
    after = {p.name: p.stat().st_mtime_ns for p in (out / "results").glob("*.json")}
    assert len(after) == 2 and all(after[name] == mtime for name, mtime in finished.items())  # none recomputed
    assert count_lines(cluster, "none avg") == 1 and count_lines(cluster, "hold avg") == 3
    assert {r["status"] for r in load_results(out)} == {"ok"}


def test_without_ray_the_launcher_fails_in_one_line_saying_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from cnnbench.cli import main

    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(grid(tmp_path / "data")))
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    assert main(["bench", str(path), "--out", str(tmp_path / "out"), "--launcher", "ray"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and 'pip install "cnnbench[ray]"' in err[0]
    assert not (tmp_path / "out").exists()


class FakeRay:
    """What the launcher asks Ray about the cluster: one node of 8 CPUs and 1 GPU."""

    def __init__(self, cpus: float = 8, gpus: float = 1) -> None:
        self.resources = {"CPU": cpus, "GPU": gpus}

    def nodes(self) -> list[dict[str, Any]]:
        return [{"Alive": True, "Resources": self.resources}]

    def cluster_resources(self) -> dict[str, float]:
        return self.resources


def test_resources_pack_fractional_gpus_and_give_a_ddp_cell_whole_gpus_on_one_node(tmp_path: Path) -> None:
    from cnnbench.bench.ray_launcher import RayOptions, _actor_count, _Context, _per_cell

    spec = GridSpec.from_dict(grid(tmp_path, resources={"gpus_per_cell": 0.25, "cpus_per_cell": 2}))
    assert spec.resources == {"gpus_per_cell": 0.25, "cpus_per_cell": 2}
    ctx = _Context(FakeRay(), spec, tmp_path, RayOptions(), None, None, False, False, None)  # type: ignore[arg-type]
    demand, threads = _per_cell(ctx, devices=1)
    assert demand == {"num_cpus": 2.0, "num_gpus": 0.25} and threads == 2
    assert _actor_count(ctx, demand, cells=10, workers=0) == 4  # 4 quarter-GPU cells share the one GPU
    assert _actor_count(ctx, demand, cells=10, workers=3) == 3 and _actor_count(ctx, demand, cells=2, workers=0) == 2
    ctx.options = RayOptions(gpus_per_cell=0.5, cpus_per_cell=1)  # the CLI overrides the grid
    assert _per_cell(ctx, devices=1)[0] == {"num_cpus": 1.0, "num_gpus": 0.5}
    assert cell_demand(devices=4, cpus_per_cell=2, gpus_per_cell=0.25) == {"num_cpus": 8.0, "num_gpus": 4.0}
    with pytest.raises(ValueError, match="asks for 4 GPUs but the largest Ray node has 1"):
        _actor_count(ctx, cell_demand(4, 1, 1), cells=1, workers=0)  # would wait forever in Ray's queue
    ctx.options = RayOptions()
    cpu_only = _Context(
        FakeRay(gpus=0), GridSpec.from_dict(grid(tmp_path)), tmp_path, RayOptions(), None, None, False, False, None
    )  # type: ignore[arg-type]
    assert _per_cell(cpu_only, devices=1)[0] == {"num_cpus": 1.0, "num_gpus": 0.0}  # no GPUs: none asked
    assert _per_cell(ctx, devices=1)[0]["num_gpus"] == 0.25  # the grid's value when the CLI gives none
    with pytest.raises(GridError, match="resources.gpus: unknown key"):
        GridSpec.from_dict(grid(tmp_path, resources={"gpus": 1}))
    with pytest.raises(GridError, match="resources.cpus_per_cell: a number > 0"):
        GridSpec.from_dict(grid(tmp_path, resources={"cpus_per_cell": 0}))
    assert "resources" not in GridSpec.from_dict(grid(tmp_path)).to_dict()  # older grids keep their grid.json


def test_a_ddp_cell_holds_its_devices_on_one_actor_and_runs_as_one_cell(
    cluster: dict[str, Any], tmp_path: Path
) -> None:
    trainer = {
        "max_steps": 3,
        "limit_val_batches": 1,
        "num_sanity_val_steps": 0,
        "accelerator": "cpu",
        "strategy": "ddp",
    }
    spec = GridSpec.from_dict(grid(cluster["data"], pool=["max"], devices=[2], trainer=trainer))
    log = io.StringIO()
    options = ray_options(cluster, "ddp", cpus_per_cell=1)  # 1 CPU per rank: the cell takes both of the cluster's
    run_grid(spec, tmp_path / "out", wandb=False, launcher="ray", ray=options, log=log)
    (result,) = load_results(tmp_path / "out")
    assert result["status"] == "ok" and result["devices"] == 2, result.get("log_tail")
    assert "1 cells with 2 device(s) on Ray, 1 at once, each 2 CPU / 0 GPU" in log.getvalue()
    assert (tmp_path / "out" / "runs" / result["run_id"] / "version_0" / "metrics.csv").exists()
    assert not forkservers()
