"""Result files are written to a temporary file and renamed: a crash or a SIGKILL while a result
is written never leaves a half file where the runner (or ``report``) reads results.

Each test would see the partial file if the result were written in place.
"""

from __future__ import annotations

import builtins
import io
import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from cnnbench.bench import results
from cnnbench.bench.results import write_json_atomic
from cnnbench.bench.runner import load_results, read_result

PREVIOUS = {"run_id": "r", "status": "failed", "error": "an earlier attempt"}


class _Crash:
    """Serializes to a string only after half the file is out: then raises (a crash mid-write)."""

    def __str__(self) -> str:
        raise RuntimeError("crashed while writing")


def test_a_crash_while_writing_keeps_the_previous_result_whole(tmp_path: Path) -> None:
    path = tmp_path / "results" / "r.json"
    write_json_atomic(path, PREVIOUS)
    with pytest.raises(RuntimeError, match="crashed while writing"):
        # sort_keys: "a" (64 KiB, written first by json.dump's chunks) then "z", which raises
        write_json_atomic(path, {"a": "x" * 65536, "status": "ok", "z": _Crash()})
    assert read_result(path) == PREVIOUS  # the previous result, complete
    assert load_results(tmp_path) == [PREVIOUS]  # and the temporary file is never read as a result


_SLOW_WRITER = """
import os, sys, time
from pathlib import Path
from cnnbench.bench.results import write_json_atomic

def slow_fsync(fd):  # the new result's bytes are out (flushed), the write has not finished
    print("writing", flush=True)
    time.sleep(60)  # killed here

os.fsync = slow_fsync
write_json_atomic(Path(sys.argv[1]), {"a": "x" * 65536, "status": "ok"})
"""


def test_sigkill_during_a_slow_write_leaves_the_previous_result(tmp_path: Path) -> None:
    path = tmp_path / "results" / "r.json"
    write_json_atomic(path, PREVIOUS)
    proc = subprocess.Popen([sys.executable, "-c", _SLOW_WRITER, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "writing"
        time.sleep(0.2)
        assert read_result(path) == PREVIOUS  # a reader during the write sees the old result
        partial = [p for p in path.parent.iterdir() if p != path]
        assert partial and partial[0].stat().st_size >= 65536  # the new one really is half written
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert read_result(path) == PREVIOUS and load_results(tmp_path) == [PREVIOUS]


def test_the_cell_and_the_runner_write_results_only_by_rename(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The two writers of a result (the cell, then the runner completing it) never open the
    result file itself for writing: a kill at any moment leaves the old file or the new one."""
    from cnnbench.bench.cell import execute  # the module's run_cell is patched below
    from cnnbench.bench.grid import GridSpec, expand
    from cnnbench.bench.launch import _complete

    opened: list[tuple[str, str]] = []
    real_open = builtins.open

    def spy(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        if any(m in mode for m in "wax+"):
            opened.append((str(file), mode))
        return real_open(file, mode, *args, **kwargs)

    spec = GridSpec.from_dict(
        {
            "name": "atomic",
            "data": {"name": "synthetic", "train_images": 32, "test_images": 8},
            "models": [{"name": "lenet5", "args": {"optimizer": "bogus"}}],
            "pool": ["max"],
            "padding": ["same"],
            "seeds": [0],
        }
    )
    (cell,) = expand(spec)
    out = tmp_path / "out"
    final = out / "results" / f"{cell.run_id}.json"
    write_json_atomic(final, PREVIOUS)
    run = {"run_id": cell.run_id, "cell": cell.to_dict(), "grid": spec.to_dict(), "out": str(out), "wandb": False}
    monkeypatch.setattr(builtins, "open", spy)
    monkeypatch.setattr(io, "open", spy)
    assert execute(run) == 1  # the unknown optimizer: a failed result, written by the cell
    written = read_result(final)
    assert written is not None and written["status"] == "failed" and "bogus" in written["error"]
    log = out / "logs" / "cell.log"
    log.parent.mkdir(parents=True)
    log.write_text("ValueError: Unknown optimizer 'bogus'\n")
    # the success path: a finished cell's result (run_cell stands in for the fit)
    import cnnbench.bench.cell as cell_module

    monkeypatch.setattr(cell_module, "run_cell", lambda run: {"run_id": run["run_id"], "status": "ok", "test_acc": 0.5})
    assert execute(run) == 0 and read_result(final) == {"run_id": cell.run_id, "status": "ok", "test_acc": 0.5}
    completed = _complete(cell, PREVIOUS, out, log, 1, {"launcher": "fork", "t_launch": 0.0})
    assert read_result(final) == completed and completed["status"] == "ok" and completed["launcher"] == "fork"
    assert opened and not [m for f, m in opened if Path(f) == final]  # only temporary files were written
    assert all(Path(f).name.startswith(".") for f, _ in opened if Path(f).parent == final.parent)
    assert json.loads(final.read_text())["t_exit"] > 0
    assert results.RESULT_SUFFIX == ".json"
