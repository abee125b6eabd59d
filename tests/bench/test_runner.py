"""The grid runner end to end on tiny offline data (each run a real forked or child process)."""

from __future__ import annotations

import io
import json
import os
import re
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml

from cnnbench.bench import launch
from cnnbench.bench.cell import write_json_atomic
from cnnbench.bench.grid import GridSpec, expand
from cnnbench.bench.launch import acquire_lock
from cnnbench.bench.report import write_report
from cnnbench.bench.runner import cpu_share, load_results, run_grid

TESTS = Path(__file__).resolve().parents[1]


def tiny_grid(root: Path, **changes: Any) -> dict[str, Any]:
    grid = {
        "name": "tiny",
        "data": {
            "name": "mnist",
            "root": str(root),
            "download": False,
            "verify": False,
            "val_size": 100,
            "batch_size": 64,
        },
        "models": ["lenet5"],
        "pool": ["max", "avg"],
        "padding": ["same"],
        "seeds": [0],
        "trainer": {"max_steps": 3, "limit_val_batches": 1, "num_sanity_val_steps": 0},
        "robustness": {"shifts": [1, 2], "max_images": 64},
    }
    grid.update(changes)
    return grid


@pytest.fixture
def fake_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    from fakes import write_fake_mnist

    # the fork server and the cells are other processes: they get the network guard too
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join([str(TESTS / "netguard"), str(TESTS), os.environ.get("PYTHONPATH", "")])
    )
    monkeypatch.setenv("CNNBENCH_NETGUARD_LOG", str(tmp_path / "network.log"))
    write_fake_mnist(tmp_path / "data", n_train=400, n_test=100)
    return tmp_path / "data"


def plain_torch_test_accuracy(run_dir: Path, pool: str) -> float:
    """Accuracy of the cell's tested checkpoint on the fake test digits, preprocessed by hand."""
    from fakes import digit_images

    from cnnbench.models import create_model

    images, labels = digit_images(100, 28, seed=1)  # what write_fake_mnist wrote as the test split
    x = torch.from_numpy(np.pad(images, ((0, 0), (2, 2), (2, 2)))).float()[:, None]  # 28 → 32, centred
    x = (x / 255.0 - 0.1307) / 0.3081
    ckpts = sorted((run_dir / "checkpoints").glob("best-*.ckpt")) or [run_dir / "checkpoints" / "last.ckpt"]
    model = create_model("lenet5", pool=pool, padding="same")
    state = torch.load(ckpts[0], map_location="cpu", weights_only=False)["state_dict"]
    missing = model.load_state_dict(state, strict=False).missing_keys
    assert not [k for k in missing if k.startswith(("features", "classifier"))]
    model.eval()
    with torch.no_grad():
        return float((model(x).argmax(1) == torch.from_numpy(labels.astype(np.int64))).float().mean())


def test_smoke_grid_end_to_end_with_infeasible_and_failed_cells(fake_root: Path, tmp_path: Path) -> None:
    grid = tiny_grid(fake_root, models=["lenet5", {"name": "lenet5", "args": {"optimizer": "bogus"}}, "alexnet"])
    grid["trainer"].update(max_steps=40, max_epochs=10)  # 10 epochs of 4 steps, each validated: a best checkpoint
    grid["data"]["augment"] = "none"  # shifts of 2 px would move a class's bar onto its neighbour's row
    spec = GridSpec.from_dict(grid)
    out = tmp_path / "out"
    outcome = run_grid(spec, out, wandb=False, keep_checkpoints=True, log=io.StringIO())
    statuses = {r["run_id"]: r["status"] for r in load_results(out)}
    assert len(statuses) == len(expand(spec)) == 6
    assert [s for k, s in statuses.items() if k.startswith("lenet5-")] == ["ok", "ok"]
    assert {s for k, s in statuses.items() if k.startswith("lenet5~")} == {"failed"}  # unknown optimizer: run raised
    assert {s for k, s in statuses.items() if k.startswith("alexnet")} == {"infeasible"}  # 32×32 shrinks below a kernel
    assert len(outcome.failed) == 2
    for ok in (r for r in load_results(out) if r["status"] == "ok"):
        # the reported accuracy is the tested checkpoint's, recomputed here in plain torch
        expected = plain_torch_test_accuracy(out / "runs" / ok["run_id"] / "version_0", ok["pool"])
        assert ok["test_acc"] == pytest.approx(expected, abs=1e-6)
        assert ok["test_acc"] > 0.3  # learnable fake digits: well above chance (0.1) after 40 steps
        assert ok["launcher"] == "fork" and ok["threads"] == cpu_share(1)
        assert ok["data_shared"]  # the split came from the fork server's decoded data, not the files
        marks = [ok[k] for k in ("t_launch", "t_first_step", "t_train_end", "t_eval_end", "t_exit")]
        assert marks == sorted(marks) and ok["test_time_s"] > 0 and ok["robustness_time_s"] > 0
    from cnnbench.models import create_model

    expected_params = sum(p.numel() for p in create_model("lenet5", padding="same").parameters())
    assert ok["params"] == expected_params and ok["images_per_s"] > 0 and ok["environment"]["torch"]
    assert isinstance(ok["robustness"], dict) and ok["robustness"]  # its contents: tests/bench/test_robustness.py
    failed = next(r for r in load_results(out) if r["status"] == "failed")
    assert "bogus" in failed["traceback"] and "ValueError: Unknown optimizer 'bogus'" in failed["error_lines"][0]
    paths = write_report(out)
    report = paths["report"].read_text()
    assert "infeasible" in report and "Unknown optimizer 'bogus'" in report  # its contents: test_report.py
    assert all(path.stat().st_size > 0 for path in paths.values())
    # rerun: nothing is done twice, failed runs only with retry_failed
    again = run_grid(spec, out, wandb=False, log=io.StringIO())
    assert again.ran == [] and len(again.skipped) == 6  # ok, failed and infeasible results are all kept
    retried = run_grid(spec, out, wandb=False, retry_failed=True, launcher="subprocess", log=io.StringIO())
    assert sorted(retried.ran) == sorted(k for k, s in statuses.items() if s == "failed")
    assert not torch.cuda.is_initialized()  # the runner itself never touches CUDA


def wandb_run_records(path: Path) -> list[Any]:
    """The records of an offline W&B run file (LevelDB log blocks of protobuf ``Record``s)."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    pos, block, records, partial = 7, 32768, [], b""
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a header is padding
            pos += block - pos % block
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        partial, pos = partial + data[pos + 7 : pos + 7 + length], pos + 7 + length
        if kind in (1, 4):  # FULL or LAST: a whole record
            record = pb.Record()  # type: ignore[attr-defined]
            record.ParseFromString(partial)
            records.append(record)
            partial = b""
    return records


def test_two_workers_a_sweep_filter_progress_lines_and_one_wandb_run_per_cell(
    fake_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    spec = GridSpec.from_dict(tiny_grid(fake_root, pool=["max", "avg", "min"], seeds=[0, 1]))
    out, log = tmp_path / "out", io.StringIO()
    outcome = run_grid(spec, out, workers=2, only={"pool": "avg"}, log=log)
    results = {r["run_id"]: r for r in load_results(out)}
    assert sorted(results) == sorted(c.run_id for c in expand(spec) if c.pool == "avg")  # the filter, nothing else
    assert sorted(outcome.ran) == sorted(results) and all(r["status"] == "ok" for r in results.values())
    assert {r["threads"] for r in results.values()} == {cpu_share(2)}
    # both launched before either ended: two at once
    assert max(r["t_launch"] for r in results.values()) < min(r["t_exit"] for r in results.values())
    lines = [line for line in log.getvalue().splitlines() if line.startswith("[")]
    pattern = r"\[(\d)/2\] ok (lenet5-avg\S+) test_acc=(\d\.\d{3}) \| running [01] \| failed 0 \| ETA \d+:\d\d"
    parsed = [re.fullmatch(pattern, line) for line in lines]
    assert len(parsed) == 2 and all(parsed), lines
    assert {m.group(2): float(m.group(3)) for m in parsed if m} == {
        k: pytest.approx(r["test_acc"], abs=5e-4) for k, r in results.items()
    }
    for run_id in results:
        folders = list((out / "runs" / run_id / "version_0" / "wandb").glob("offline-run-*"))
        assert len(folders) == 1  # one W&B run for the fit, the test and the summary
        run = next(r.run for r in wandb_run_records(next(folders[0].glob("*.wandb"))) if r.HasField("run"))
        config = {item.key: json.loads(item.value_json) for item in run.config.update}
        assert run.run_group == "tiny" and run.display_name == run_id
        assert config["cell"]["pool"] == "avg" and f"s{config['cell']['seed']}" == run_id.rsplit("-", 1)[1]
    assert not (tmp_path / "network.log").exists()


def test_a_cell_finished_by_another_runner_before_the_lock_is_not_run_again(
    fake_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The double-start race, made certain: the other runner finishes the cell right after
    this one read the results and right before it takes the cell's lock."""
    spec = GridSpec.from_dict(tiny_grid(fake_root, pool=["max"]))
    out = tmp_path / "out"
    (cell,) = expand(spec)
    finished_elsewhere = {"run_id": cell.run_id, "status": "ok", "test_acc": 0.5, "by": "the other runner"}
    real_acquire = launch.acquire_lock

    def acquire_after_the_other_runner_finished(path: Path) -> bool:
        write_json_atomic(out / "results" / f"{cell.run_id}.json", finished_elsewhere)
        return real_acquire(path)

    monkeypatch.setattr(launch, "acquire_lock", acquire_after_the_other_runner_finished)
    outcome = run_grid(spec, out, wandb=False, launcher="subprocess", log=io.StringIO())
    assert outcome.ran == [] and outcome.skipped == [cell.run_id]
    assert load_results(out) == [finished_elsewhere]  # not recomputed, not overwritten
    assert not list((out / "locks").iterdir())


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
    with pytest.raises(SystemExit):
        main(["bench", str(path), "--launcher", "thread"])
    assert "invalid choice: 'thread'" in capsys.readouterr().err
